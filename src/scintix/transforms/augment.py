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
        return not c.enabled or (no_affine and c.flip_prob == 0 and c.intensity == 0)

    def __call__(self, arr: np.ndarray, seed: int) -> np.ndarray:
        if self.is_identity():
            return arr
        h, w = arr.shape[-2:]
        self.affine.rand_affine_grid.translate_range = ((-self.cfg.translate * h, self.cfg.translate * h), (-self.cfg.translate * w, self.cfg.translate * w))
        self.affine.set_random_state(seed=seed % (2**32))
        self.flip.set_random_state(seed=(seed + 1) % (2**32))
        # Pad value = background: shift to a zero minimum so MONAI's zero padding fills background.
        lo = arr.min()
        t = torch.as_tensor(arr - lo)
        t = self.affine(t)
        t = self.flip(t)
        out = np.asarray(t.as_tensor() if hasattr(t, "as_tensor") else t, dtype=np.float32) + lo
        if self.cfg.intensity > 0:
            rng = np.random.default_rng(seed + 2)
            out = out * np.float32(1 + rng.uniform(-self.cfg.intensity, self.cfg.intensity))
        return out
