"""Intensity augmentation after the geometric part: Gaussian noise, Gaussian blur, contrast and gamma (nnU-Net's set).

A model trained on one scanner, site or count level meets images whose
contrast, noise and sharpness differ; nnU-Net trains every model with these
four perturbations (plus brightness, :attr:`AugmentConfig.intensity`). Each
applies to an image with probability ``augment.intensity_prob``, with its
strength drawn from the image's own seeded generator (replayable, independent
of the batch it lands in and of the geometric draws), in nnU-Net's order:
noise, blur, contrast, gamma. They work in each image's own intensity range
(its minimum to maximum before they start), so they mean the same for raw
counts, min-max or z-scored inputs; contrast and gamma keep that range. Masks
and P3's cross-feature images are not touched. Written here rather than with
MONAI's per-sample ``RandGaussianNoise`` / ``RandGaussianSmooth`` /
``RandAdjustContrast`` because the batched path (:mod:`.batch_augment`) applies
them to a whole batch on its device, each image replayable from its own seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["IntensityParams", "sample_intensity", "apply_intensity", "has_intensity_ops"]

_STREAM = 0x5EED_1A7E  # offsets the image's seed so these draws never reuse the geometric ones


@dataclass(frozen=True)
class IntensityParams:
    """One image's draw: noise sd (a share of its intensity range), blur sigma (pixels), contrast factor, gamma exponent."""

    noise: float = 0.0
    blur: float = 0.0
    contrast: float = 1.0
    gamma: float = 1.0
    noise_seed: int = 0

    def is_identity(self) -> bool:
        return self.noise == 0 and self.blur == 0 and self.contrast == 1 and self.gamma == 1


def has_intensity_ops(cfg) -> bool:
    """Whether ``cfg`` (an :class:`~scintix.transforms.augment.AugmentConfig`) asks for any of these four."""
    return cfg.intensity_prob > 0 and (cfg.noise > 0 or cfg.blur > 0 or cfg.contrast > 0 or cfg.gamma > 0)


def sample_intensity(cfg, seed: int) -> IntensityParams:
    """The four draws for one image; a fixed number of random numbers whatever applies, so each draw is stable."""
    rng = np.random.default_rng((int(seed) + _STREAM) % (2**63))
    on = rng.random(4) < cfg.intensity_prob
    u = rng.random(4)
    noise = float(u[0] * cfg.noise) if on[0] else 0.0
    blur = float(u[1] * cfg.blur) if on[1] else 0.0
    contrast = 1.0 + float((2 * u[2] - 1) * cfg.contrast) if on[2] else 1.0
    log_g = math.log1p(cfg.gamma)  # gamma log-uniform in [1 / (1 + g), 1 + g]: brighter and darker equally often
    gamma = float(math.exp((2 * u[3] - 1) * log_g)) if on[3] else 1.0
    return IntensityParams(noise, blur, contrast, gamma, int(rng.integers(2**31)))


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of one image (1, C, H, W), reflect padding (edges keep their level)."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum()).to(x.dtype).to(x.device)
    c = x.shape[1]
    h, w = x.shape[-2:]
    pad_h, pad_w = min(r, h - 1), min(r, w - 1)  # reflect needs padding < size; a wider kernel on a tiny image is cropped
    kh, kw = k[r - pad_h:r + pad_h + 1], k[r - pad_w:r + pad_w + 1]
    kh, kw = kh / kh.sum(), kw / kw.sum()
    x = F.conv2d(F.pad(x, (0, 0, pad_h, pad_h), mode="reflect"), kh.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (pad_w, pad_w, 0, 0), mode="reflect"), kw.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)


def apply_intensity(x: torch.Tensor, params: Sequence[IntensityParams]) -> torch.Tensor:
    """``x`` (B, C, H, W) with each image's draw applied; images whose draw is the identity come back unchanged."""
    if all(p.is_identity() for p in params):
        return x
    out = []
    for img, p in zip(x.split(1), params):
        if p.is_identity():
            out.append(img)
            continue
        lo, hi = img.amin(), img.amax()
        span = (hi - lo).clamp_min(1e-8)
        if p.noise > 0:
            g = torch.Generator().manual_seed(p.noise_seed)
            img = img + (p.noise * span) * torch.randn(img.shape, generator=g, dtype=torch.float32).to(img.device, img.dtype)
        if p.blur > 0:
            img = _gaussian_blur(img, p.blur)
        if p.contrast != 1:
            mean = img.mean()
            img = ((img - mean) * p.contrast + mean).clamp(lo, hi)  # nnU-Net's preserve_range
        if p.gamma != 1:
            img = ((img.clamp(lo, hi) - lo) / span) ** p.gamma * span + lo
        out.append(img)
    return torch.cat(out)
