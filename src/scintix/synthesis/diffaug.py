"""Differentiable augmentation (Zhao et al., NeurIPS 2020): the same random transforms on real and generated images.

Applied to every image the discriminator sees (real and generated, in both the
discriminator's and the generator's step), so a discriminator trained on a few
hundred images cannot simply memorise them, while gradients still flow to the
generator. Pure functions of a batch and a ``torch.Generator``; with
``gan.ada_target`` each transform reaches an image with a probability that
:class:`AdaptiveProbability` tunes to the discriminator's overfitting (ADA).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["diff_augment", "POLICIES", "AdaptiveProbability"]


def brightness_contrast(x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
    b = x.shape[0]
    shift = torch.rand(b, 1, 1, 1, generator=g, device=x.device) - 0.5
    x = x + shift.to(x.dtype)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    scale = torch.rand(b, 1, 1, 1, generator=g, device=x.device) + 0.5
    return (x - mean) * scale.to(x.dtype) + mean


def _background(x: torch.Tensor) -> torch.Tensor:
    """Per image, its darkest value ``(B, 1, 1, 1)``: the background of a scan, whatever the intensity range
    (the GAN works in [-1, 1], where 0 would be a mid-grey patch no scan has)."""
    return x.detach().amin(dim=(1, 2, 3), keepdim=True)


def translation(x: torch.Tensor, g: torch.Generator | None = None, ratio: float = 0.125) -> torch.Tensor:
    """Shift by up to ``ratio`` of each side, filled with the image's background."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b,), generator=g, device=x.device)
    dx = torch.randint(-sw, sw + 1, (b,), generator=g, device=x.device)
    bg = _background(x)
    padded = F.pad(x - bg, (sw, sw, sh, sh)) + bg
    rows = (torch.arange(h, device=x.device)[None, :] + sh - dy[:, None]).clamp(0, h + 2 * sh - 1)  # (B, H)
    cols = (torch.arange(w, device=x.device)[None, :] + sw - dx[:, None]).clamp(0, w + 2 * sw - 1)  # (B, W)
    idx = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def cutout(x: torch.Tensor, g: torch.Generator | None = None, ratio: float = 0.5) -> torch.Tensor:
    """Set one rectangle of ``ratio`` x each side per image to the image's background."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = torch.randint(0, h, (b,), generator=g, device=x.device)[:, None, None] - ch // 2  # centre anywhere in the image
    x0 = torch.randint(0, w, (b,), generator=g, device=x.device)[:, None, None] - cw // 2
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    keep = (~inside)[:, None].to(x.dtype)
    return x * keep + _background(x) * (1 - keep)


POLICIES = {"color": brightness_contrast, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: Sequence[str], g: torch.Generator | None = None, p: float = 1.0) -> torch.Tensor:
    """Apply the named transforms in order (``color``, ``translation``, ``cutout``); ``()`` is the identity.

    ``p < 1``: each transform reaches each image with probability ``p`` (ADA's per-image probability; ``p = 0`` is the
    identity, ``p = 1`` is always-on DiffAugment, drawing exactly the same random numbers as before ``p`` existed).
    """
    for name in policy:
        if name not in POLICIES:
            raise ValueError(f"differentiable augmentation {name!r}: one of {sorted(POLICIES)}")
        if p >= 1:
            x = POLICIES[name](x, g)
        elif p > 0:
            hit = (torch.rand(x.shape[0], generator=g, device=x.device) < p).view(-1, 1, 1, 1)
            x = torch.where(hit, POLICIES[name](x, g), x)
    return x


class AdaptiveProbability:
    """ADA's controller (Karras et al., NeurIPS 2020, "Training GANs with limited data"): the augmentation probability ``p``
    follows the discriminator's overfitting.

    The heuristic is ``r = E[sign(D(real))]`` over the last ``interval`` discriminator updates: near 0 while the
    discriminator cannot tell its (augmented) training images from generated ones, toward 1 as it memorises them. After
    every ``interval`` updates ``p`` moves by ``sign(r - target) * images / (kimg * 1000)``: it could cross from 0 to 1
    in ``kimg`` thousand real images, and is clipped to [0, 1]. Starting at ``p = 0`` a discriminator that is not
    overfitting is not slowed down by augmentation at all, which always-on DiffAugment does (issue 11's measurements:
    ~100 updates to learn a fixed difference).
    """

    def __init__(self, target: float = 0.6, kimg: float = 100.0, interval: int = 4, p: float = 0.0):
        self.target, self.kimg, self.interval, self.p = target, kimg, interval, p
        self._signs, self._images, self._updates = 0.0, 0, 0

    def update(self, mean_sign: float, images: int) -> float:
        """Record one discriminator update (the mean of ``sign(D(real))`` over its ``images`` real images); adjust ``p``
        every ``interval`` updates; returns ``p``."""
        self._signs += mean_sign * images
        self._images += images
        self._updates += 1
        if self._updates >= self.interval:
            r = self._signs / self._images
            step = ((r > self.target) - (r < self.target)) * self._images / (self.kimg * 1000)  # sign(r - target)
            self.p = float(min(1.0, max(0.0, self.p + step)))
            self._signs, self._images, self._updates = 0.0, 0, 0
        return self.p

    def state_dict(self) -> dict:
        return {"p": self.p, "signs": self._signs, "images": self._images, "updates": self._updates}

    def load_state_dict(self, state: dict) -> None:
        self.p, self._signs, self._images, self._updates = float(state["p"]), float(state["signs"]), int(state["images"]), int(state["updates"])
