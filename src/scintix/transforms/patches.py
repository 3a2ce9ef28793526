"""Training patches for segmentation: random crops, a share of them centred on foreground (nnU-Net's oversampling).

Small lesions on a large scan (a metastasis of a few pixels on a 1024x256
whole-body scan) are rare among random crops; with probability ``fg_prob`` a
crop is centred on a random foreground pixel instead. Pure given its
generator, so a patch replays from (seed, epoch, index) like any augmentation.
"""

from __future__ import annotations

import numpy as np

__all__ = ["sample_patch"]


def sample_patch(image: np.ndarray, mask: np.ndarray | None, size: tuple[int, int], rng: np.random.Generator, fg_prob: float = 0.33,
                 cross: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, tuple[int, int]]:
    """A ``size`` crop of ``(C, H, W)`` arrays (the same window for image, mask and cross); returns them and the corner.

    An image smaller than ``size`` along an axis is zero-padded (mask: background) to fit.
    """
    ph, pw = size
    h, w = image.shape[-2:]
    pad_h, pad_w = max(0, ph - h), max(0, pw - w)
    if pad_h or pad_w:
        pad = ((0, 0), (pad_h // 2, pad_h - pad_h // 2), (pad_w // 2, pad_w - pad_w // 2))
        image = np.pad(image, pad, constant_values=image.min())
        mask = np.pad(mask, pad) if mask is not None else None
        cross = np.pad(cross, pad, constant_values=cross.min()) if cross is not None else None
        h, w = image.shape[-2:]
    fg = np.argwhere(mask[0] > 0) if mask is not None and rng.random() < fg_prob else np.zeros((0, 2))
    if len(fg):
        cy, cx = fg[rng.integers(len(fg))]
        top, left = int(np.clip(cy - ph // 2, 0, h - ph)), int(np.clip(cx - pw // 2, 0, w - pw))
    else:
        top, left = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
    win = (slice(None), slice(top, top + ph), slice(left, left + pw))
    return image[win], (mask[win] if mask is not None else None), (cross[win] if cross is not None else None), (top, left)
