"""Online geometric augmentation with MONAI, replayable from a seed.

Each call is given its own seed (the dataset derives it from the run seed, the
epoch and the image index), so an augmented sample can be reproduced exactly,
workers do not share random streams, and a resumed run sees the same samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .intensity_augment import apply_intensity, has_intensity_ops, sample_intensity

__all__ = ["AugmentConfig", "Augmenter"]


@dataclass(frozen=True)
class AugmentConfig:
    """Online augmentation, applied to training images only."""

    enabled: bool = True
    prob: float = 0.8  # probability that the affine part is applied to a sample
    rotate_deg: float = 10.0  # uniform in +-rotate_deg
    translate: float = 0.05  # fraction of the image size, each axis
    scale: float = 0.1  # zoom factor in 1 +- scale
    flip_prob: float = 0.0  # left-right flip; off by default because it swaps body sides
    intensity: float = 0.0  # multiplicative intensity jitter in 1 +- intensity (count level)
    # nnU-Net's other intensity perturbations (transforms/intensity_augment.py), each on a share intensity_prob of the images:
    noise: float = 0.0  # Gaussian noise, sd up to this share of the image's intensity range
    blur: float = 0.0  # Gaussian blur, sigma up to this many pixels
    contrast: float = 0.0  # contrast around the image's mean in 1 +- contrast, range kept
    gamma: float = 0.0  # gamma exponent log-uniform in [1 / (1 + gamma), 1 + gamma] on the image's own range
    intensity_prob: float = 0.15  # probability of each of noise, blur, contrast, gamma (nnU-Net: 0.1-0.15)
    batched: bool = True  # one affine grid per training batch (BatchAugmenter, ~6x cheaper) instead of MONAI per sample; per sample with data.patch_size
    offline_copies: int = 0  # P1's "augmented dataset": this many fixed copies of every training image, drawn once (seeded) from the ranges above and added to the training split; independent of enabled (online)

    def __post_init__(self) -> None:
        for name in ("prob", "flip_prob", "intensity_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"augment.{name}={getattr(self, name)}: a probability in [0, 1]")
        for name in ("rotate_deg", "translate", "scale", "intensity", "noise", "blur", "contrast", "gamma"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"augment.{name}={getattr(self, name)}: must be >= 0")
        if not (isinstance(self.offline_copies, int) and self.offline_copies >= 0):
            raise ValueError(f"augment.offline_copies={self.offline_copies}: a whole number >= 0")
        if self.scale >= 1 or self.intensity >= 1 or self.contrast >= 1:
            raise ValueError(f"augment.scale={self.scale}, augment.intensity={self.intensity}, augment.contrast={self.contrast}: must stay below 1 (factors 1 +- x)")


class Augmenter:
    """Callable ``(array (C,H,W), seed) -> array``; identity parameters return the input unchanged."""

    def __init__(self, cfg: AugmentConfig) -> None:
        from monai.transforms import RandAffine, RandFlip

        self.cfg = cfg
        self.affine = RandAffine(
            prob=cfg.prob,
            rotate_range=(math.radians(cfg.rotate_deg),),
            scale_range=(cfg.scale, cfg.scale),
            translate_range=(0.0, 0.0),  # set per image: MONAI translates in pixels
            padding_mode="zeros",
            mode="bilinear",
        )
        self.flip = RandFlip(prob=cfg.flip_prob, spatial_axis=1)

    def is_identity(self) -> bool:
        c = self.cfg
        no_affine = c.prob == 0 or (c.rotate_deg == 0 and c.translate == 0 and c.scale == 0)
        return not c.enabled or (no_affine and c.flip_prob == 0 and c.intensity == 0 and not has_intensity_ops(c))

    def __call__(self, arr: np.ndarray, seed: int) -> np.ndarray:
        """The augmented image alone."""
        return self.apply(arr, seed)[0]

    def apply(self, arr: np.ndarray, seed: int, mask: np.ndarray | None = None, cross: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """``(image, mask, cross)`` under one sampled geometric transform.

        The image and the cross-feature image are resampled bilinearly, the mask
        by nearest neighbour (labels never blend) with background padding; the
        intensity jitter touches the image only. The same seed gives the same
        transform, with or without a mask.
        """
        if self.is_identity():
            return arr, mask, cross
        h, w = arr.shape[-2:]
        self.affine.rand_affine_grid.translate_range = ((-self.cfg.translate * h, self.cfg.translate * h), (-self.cfg.translate * w, self.cfg.translate * w))
        self.affine.set_random_state(seed=seed % (2**32))
        self.flip.set_random_state(seed=(seed + 1) % (2**32))
        out = self._geometric(arr, randomize=True, mode="bilinear")
        # the other inputs replay the transform just drawn (randomize=False)
        if cross is not None:
            cross = self._geometric(cross, randomize=False, mode="bilinear")
        if mask is not None:
            mask = np.rint(self._geometric(mask.astype(np.float32), randomize=False, mode="nearest", shift=False)).astype(mask.dtype)
        if self.cfg.intensity > 0:
            rng = np.random.default_rng(seed + 2)
            out = out * np.float32(1 + rng.uniform(-self.cfg.intensity, self.cfg.intensity))
        if has_intensity_ops(self.cfg):  # the same draw as the batched path's for this seed
            out = apply_intensity(torch.as_tensor(np.ascontiguousarray(out))[None], [sample_intensity(self.cfg, seed)])[0].numpy()
        return out, mask, cross

    def _geometric(self, arr: np.ndarray, randomize: bool, mode: str, shift: bool = True) -> np.ndarray:
        # Pad value = background: shift to a zero minimum so MONAI's zero padding fills background (masks: 0 already).
        lo = arr.min() if shift else 0.0
        t = torch.as_tensor(arr - lo)
        t = self.affine(t, mode=mode, randomize=randomize)
        t = self.flip(t, randomize=randomize)
        return np.asarray(t.as_tensor() if hasattr(t, "as_tensor") else t, dtype=np.float32) + lo
