"""The one classifier interface every scintix model has (timm's shape).

``forward_features(x) -> (B, F, h, w)`` feature map, ``forward_head(f) -> (B, K)``
logits, ``reset_classifier(K)``, and ``cam_layer``: the name of the module a
CAM method should hook (the last spatial feature block).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ImageClassifier"]


class ImageClassifier(nn.Module):
    """Feature extractor + global average pool + dropout + linear head.

    Args:
        features: module mapping ``(B, C, H, W)`` to ``(B, num_features, h, w)``.
        num_features: channels of the feature map.
        num_classes: logits out; 2 for binary (softmax), K for multi-class or multi-label (sigmoid).
        dropout: dropout before the head.
        cam_layer: dotted name of the module CAMs hook, relative to this model.
    """

    def __init__(self, features: nn.Module, num_features: int, num_classes: int, dropout: float = 0.0, cam_layer: str = "features") -> None:
        super().__init__()
        self.features = features
        self.num_features = num_features
        self.num_classes = num_classes
        self.cam_layer = cam_layer
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(torch.flatten(nn.functional.adaptive_avg_pool2d(f, 1), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes)
