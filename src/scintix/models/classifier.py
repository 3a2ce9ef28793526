"""The one classifier interface every scintix model has (timm's shape).

``forward_features(x) -> (B, F, h, w)`` feature map, ``forward_head(f) -> (B, K)``
logits, ``reset_classifier(K)``, and ``cam_layer``: the name of the module a
CAM method should hook (the last spatial feature block). Logits are raw: the
task decides softmax (binary, multi-class) or sigmoid (multi-label).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ImageClassifier"]


class ImageClassifier(nn.Module):
    kind = "classification"

    """Feature extractor + pooling (+ optional MLP) + dropout + linear classifier ``fc``.

    Args:
        features: module mapping ``(B, C, H, W)`` to ``(B, num_features, h, w)``.
        num_features: channels of the feature map.
        num_classes: logits out.
        dropout: dropout before ``fc``.
        cam_layer: dotted name of the module CAMs hook, relative to this model.
        pre_logits: replaces global average pooling when given (VGG/AlexNet's
            pooled MLP); must map the feature map to ``(B, head_features)``.
        head_features: width of ``pre_logits``' output (``num_features`` by default).
        inputs: the named inputs ``forward`` takes: ``("image",)``, or e.g.
            ``("image", "cross")`` when ``features`` also takes a ``cross`` tensor.
    """

    def __init__(
        self,
        features: nn.Module,
        num_features: int,
        num_classes: int,
        dropout: float = 0.0,
        cam_layer: str = "features",
        pre_logits: nn.Module | None = None,
        head_features: int | None = None,
        inputs: tuple[str, ...] = ("image",),
    ) -> None:
        super().__init__()
        self.inputs = tuple(inputs)
        self.features = features
        self.num_features = num_features
        self.num_classes = num_classes
        self.cam_layer = cam_layer
        self.pre_logits = pre_logits if pre_logits is not None else nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.head_features = head_features or num_features
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(self.head_features, num_classes)

    def forward_features(self, x: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        return self.features(x, **extra) if extra else self.features(x)

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(self.pre_logits(f)))

    def forward(self, x: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, K)``; ``extra`` holds the inputs named in ``self.inputs`` beyond the image."""
        return self.forward_head(self.forward_features(x, **extra))

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.fc = nn.Linear(self.head_features, num_classes)

    def backbone_parameters(self):
        """Everything but the final classifier (what ``freeze_backbone`` freezes)."""
        return (p for n, p in self.named_parameters() if not n.startswith("fc."))
