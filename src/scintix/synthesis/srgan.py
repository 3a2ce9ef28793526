"""SRGAN (P3): x2 / x4 super-resolution of scans, its losses and image-quality measures.

Shape example (``scale=4``): ``(B, 1, 64, 16)`` -> ``(B, 1, 256, 64)``. The
generator is SRResNet (Ledig et al., 2017): a 9x9 stem, residual blocks
(conv-BN-PReLU-conv-BN), a long skip, then ``log2(scale)`` x2 sub-pixel
(pixel-shuffle) up-samplings and a 9x9 output convolution. One change: it
predicts the *residual* over bicubic up-sampling, so an untrained network is
already bicubic and training only adds detail (faster on a CPU budget).

Losses: content (L1 on pixels) + ``perceptual_weight`` x MSE between the
feature maps of a scintix classifier trained on the same domain (its
``forward_features`` output, the last convolutional stage, before pooling; no
ImageNet VGG weights can be downloaded) + ``adversarial_weight`` x the
non-saturating GAN loss of a spectrally normalised discriminator.

Measures (pure): :func:`psnr` and :func:`ssim` (MONAI's Gaussian-window SSIM,
11 px, sigma 1.5), on images in [0, 1].
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["SRGenerator", "SRDiscriminator", "downsample", "bicubic", "psnr", "ssim"]


class _Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.PReLU(c), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRGenerator(nn.Module):
    """``(B, C, h, w)`` in [0, 1] -> ``(B, C, scale*h, scale*w)``: bicubic up-sampling + a learned residual.

    Args:
        scale: 2 or 4.
        channels: image channels.
        features: width of the residual trunk.
        blocks: residual blocks (SRGAN uses 16).
    """

    def __init__(self, scale: int = 2, channels: int = 1, features: int = 32, blocks: int = 8) -> None:
        super().__init__()
        if scale not in (2, 4):
            raise ValueError(f"super-resolution scale {scale}: 2 or 4")
        self.scale = scale
        self.stem = nn.Sequential(nn.Conv2d(channels, features, 9, padding=4), nn.PReLU(features))
        self.trunk = nn.Sequential(*(_Residual(features) for _ in range(blocks)), nn.Conv2d(features, features, 3, padding=1, bias=False), nn.BatchNorm2d(features))
        ups: list[nn.Module] = []
        for _ in range(int(math.log2(scale))):
            ups += [nn.Conv2d(features, features * 4, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(features)]
        self.up = nn.Sequential(*ups)
        self.out = nn.Conv2d(features, channels, 9, padding=4)
        nn.init.zeros_(self.out.weight)  # starts as bicubic exactly
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.stem(x)
        return bicubic(x, self.scale) + self.out(self.up(s + self.trunk(s)))


class SRDiscriminator(nn.Module):
    """``(B, C, H, W)`` -> realness ``(B,)``: strided convolutions, spectral norm, global average pooling (any size)."""

    def __init__(self, channels: int = 1, base: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for i, cout in enumerate((base, base, base * 2, base * 2, base * 4, base * 4)):
            layers += [spectral_norm(nn.Conv2d(cin, cout, 3, stride=1 + i % 2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), spectral_norm(nn.Linear(cin, base * 4)), nn.LeakyReLU(0.2, inplace=True), spectral_norm(nn.Linear(base * 4, 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)


def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The low-resolution input: anti-aliased bicubic down-sampling by ``scale`` (sides must divide)."""
    h, w = x.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"image {h}x{w}: both sides must be multiples of the scale {scale}")
    return F.interpolate(x, size=(h // scale, w // scale), mode="bicubic", antialias=True, align_corners=False)


def bicubic(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The baseline: bicubic up-sampling by ``scale``."""
    return F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False)


def psnr(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per image ``(B,)``: ``10 log10(range^2 / MSE)``; identical images give +inf."""
    mse = (pred.float() - target.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(data_range**2 / mse)


def ssim(pred: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per image ``(B,)``: mean SSIM with an 11-px Gaussian window (sigma 1.5), k1 0.01, k2 0.03 (MONAI)."""
    from monai.metrics.regression import compute_ssim_and_cs

    win = min(11, *pred.shape[-2:])
    win -= 1 - win % 2  # odd
    s, _ = compute_ssim_and_cs(pred.float(), target.float(), 2, [win, win], [1.5, 1.5], data_range)
    return s.flatten(1).mean(1)
