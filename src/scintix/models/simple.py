"""Small self-defined CNNs: ``small_cnn`` (fast CPU baseline) and P2's ``dspic``."""

from __future__ import annotations

import torch
from torch import nn

from .classifier import ImageClassifier

__all__ = ["small_cnn", "dspic"]


def _conv_block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


def small_cnn(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.2, small_input: bool = False) -> ImageClassifier:
    """A 4-stage VGG-style CNN (~0.3 M parameters) for fast CPU runs and tests."""
    widths = [16, 32, 64, 128]
    layers: list[nn.Module] = []
    cin = in_channels
    for i, w in enumerate(widths):
        layers.append(_conv_block(cin, w))
        if i < len(widths) - 1 and not (small_input and i == 0):
            layers.append(nn.MaxPool2d(2))
        cin = w
    return ImageClassifier(nn.Sequential(*layers), cin, num_classes, dropout, cam_layer=f"features.{len(layers) - 1}")


class _AvgMaxPool(nn.Module):
    """Concatenated global average and global max pooling: ``(B, C, h, w) -> (B, 2C)``."""

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)


def dspic(in_channels: int = 1, num_classes: int = 3, dropout: float = 0.3, small_input: bool = False) -> ImageClassifier:
    """dSPIC-style whole-body multi-label CNN (P2), our reading of the abstract.

    The abstract only says "end-to-end self-defined CNN" with several feature
    extraction stages and a classifier for metastasis / arthritis / normal. The
    choices made where it is silent:

    - Stem: 5x5 stride-2 convolution (a 1024x256 scan -> 512x128) to make the
      full whole-body resolution affordable.
    - Five stages of two 3x3 conv-BN-ReLU layers (32, 64, 96, 128, 192
      channels), each followed by 2x2 max-pooling: 1024x256 -> 16x4 features,
      a receptive field that covers a vertebra-to-pelvis span.
    - Head: global average *and* max pooling concatenated. Metastases are small
      focal hot spots; average pooling alone dilutes one lesion over the whole
      skeleton, max pooling keeps it. Then dropout and a linear layer with one
      logit per label; trained with sigmoid/BCE (multi-label: one scan may
      carry several diseases).
    - ~1.0 M parameters (3 labels), so it trains on a CPU.
    Two input channels take ANT and POST views together.
    """
    widths = [32, 64, 96, 128, 192]
    stem_stride = 1 if small_input else 2
    layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(in_channels, 24, 5, stem_stride, 2, bias=False), nn.BatchNorm2d(24), nn.ReLU(inplace=True))]
    cin = 24
    for i, w in enumerate(widths):
        layers.append(_conv_block(cin, w))
        if not (small_input and i >= 3):  # 28 px: stop pooling at 3x3
            layers.append(nn.MaxPool2d(2, ceil_mode=True))  # ceil: small inputs keep >= 1 pixel
        cin = w
    # CAM hook: the last conv block (before its pool), which still has spatial extent.
    cam = len(layers) - 2 if isinstance(layers[-1], nn.MaxPool2d) else len(layers) - 1
    return ImageClassifier(nn.Sequential(*layers), cin, num_classes, dropout, f"features.{cam}", _AvgMaxPool(), 2 * cin)
