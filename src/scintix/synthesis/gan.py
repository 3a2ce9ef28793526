"""A conditional DCGAN for small medical-image sets: generator, projection discriminator, losses.

Shape example (``size=(256, 64)``, one channel, two classes): ``z`` ``(B, 128)``
and the condition ``y`` ``(B, 2)`` (one-hot; multi-hot for multi-label) ->
``(B, 512, 16, 4)`` -> four x2 up-sampling blocks -> ``(B, 1, 256, 64)`` in
``[-1, 1]``. The shorter side must be 4 x 2^k (16, 32, 64, 128, ...) and the
longer one a multiple of 2^k: 64x64 thyroid scans, 256x64 or 160x64 chest
crops and 512x128 half whole-body scans all fit.

What makes it train on a few hundred images (the choices, with their sources):
  - up-sampling by nearest neighbour + 3x3 convolution, not transposed
    convolution (no checkerboard artefacts; Odena et al., 2016);
  - spectral normalisation on every discriminator layer and no BatchNorm there
    (Miyato et al., 2018);
  - a projection discriminator: the condition enters as an inner product with
    the pooled features (Miyato & Koyama, 2018), which also takes multi-hot
    label vectors;
  - hinge loss (default) or the non-saturating loss, optional R1 gradient
    penalty (:func:`r1_penalty`);
  - a minibatch standard-deviation channel at the discriminator's coarse end
    (Karras et al., ProGAN 2018): a generator that collapses onto a few
    images gives batches with too little spread, which a per-image
    discriminator cannot see (it did collapse on BS-80K chest crops without it);
  - differentiable augmentation of real and generated images before the
    discriminator (:mod:`.diffaug`), and an EMA of the generator's weights
    for sampling (:mod:`.train_gan`).
"""

from __future__ import annotations

import math
from typing import Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

__all__ = ["Generator", "Discriminator", "up_steps", "batch_std", "d_loss", "g_loss", "r1_penalty"]


def up_steps(size: Sequence[int]) -> int:
    """k, the number of x2 steps from a 4-pixel short side to ``size``; a size that does not fit is refused."""
    h, w = (int(s) for s in size)
    short = min(h, w)
    k = int(round(math.log2(short / 4))) if short >= 4 else -1
    if k < 1 or 4 * 2**k != short or h % 2**k or w % 2**k:
        raise ValueError(f"GAN image size {h}x{w}: the shorter side must be 4 x 2^k (16, 32, 64, 128, ...) and the longer a multiple of 2^k; "
                         "e.g. 64x64, 160x64, 256x64, 512x128 (set data.image_size)")
    return k


def _width(base: int, k: int, level: int) -> int:
    """Channels at ``level`` (0 = the 4-pixel end): wide at the coarse end, ``base`` at full resolution."""
    return base * min(8, 2 ** (k - level))


class Generator(nn.Module):
    """``(z (B, latent_dim), y (B, num_conditions))`` -> ``(B, out_channels, H, W)`` in ``[-1, 1]``.

    Args:
        size: ``(H, W)`` (see :func:`up_steps`).
        latent_dim: noise dimension.
        num_conditions: classes (one-hot) or labels (multi-hot); 0 = unconditional.
        out_channels: image channels.
        base: channels at full resolution (x8 at the coarse end, capped).
    """

    def __init__(self, size: Sequence[int], latent_dim: int = 128, num_conditions: int = 2, out_channels: int = 1, base: int = 64) -> None:
        super().__init__()
        self.size, self.latent_dim, self.num_conditions = tuple(int(s) for s in size), latent_dim, num_conditions
        k = up_steps(self.size)
        self.start = (self.size[0] >> k, self.size[1] >> k)
        c0 = _width(base, k, 0)
        self.embed = nn.Linear(num_conditions, latent_dim, bias=False) if num_conditions else None
        self.project = nn.Sequential(nn.Linear(latent_dim * (2 if num_conditions else 1), c0 * self.start[0] * self.start[1]),
                                     nn.Unflatten(1, (c0, *self.start)), nn.BatchNorm2d(c0), nn.ReLU(inplace=True))
        blocks = []
        for level in range(k):
            cin, cout = _width(base, k, level), _width(base, k, level + 1)
            blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Conv2d(_width(base, k, k), out_channels, 3, padding=1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional generator needs the condition y (B, num_conditions)")
            z = torch.cat([z, self.embed(y.float())], dim=1)
        return torch.tanh(self.out(self.blocks(self.project(z))))


class Discriminator(nn.Module):
    """``(x (B, C, H, W), y (B, num_conditions))`` -> one realness score per image ``(B,)``, all layers spectrally normalised."""

    def __init__(self, size: Sequence[int], num_conditions: int = 2, in_channels: int = 1, base: int = 64, minibatch_std: bool = True) -> None:
        super().__init__()
        k = up_steps(size)
        self.minibatch_std = minibatch_std
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(in_channels, _width(base, k, k), 3, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
        for level in range(k, 0, -1):
            cin, cout = _width(base, k, level), _width(base, k, level - 1)
            layers += [spectral_norm(nn.Conv2d(cin, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2, inplace=True)]
        c = _width(base, k, 0)
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(spectral_norm(nn.Conv2d(c + int(minibatch_std), c, 3, padding=1)), nn.LeakyReLU(0.2, inplace=True))
        self.linear = spectral_norm(nn.Linear(c, 1))
        self.embed = spectral_norm(nn.Linear(num_conditions, c, bias=False)) if num_conditions else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        if self.minibatch_std:
            h = torch.cat([h, batch_std(h)], dim=1)
        h = self.head(h).sum(dim=(2, 3))  # sum pooling, as in the projection discriminator
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional discriminator needs the condition y (B, num_conditions)")
            out = out + (self.embed(y.float()) * h).sum(dim=1)
        return out


def batch_std(h: torch.Tensor, group: int = 4) -> torch.Tensor:
    """ProGAN's minibatch-std feature: per group of ``group`` images, the mean over features and positions of
    their standard deviation, broadcast as one extra channel ``(B, 1, H, W)`` (one group if B is not a multiple)."""
    b, _, hh, ww = h.shape
    g = group if b % group == 0 and b >= group else b
    std = h.float().reshape(g, b // g, *h.shape[1:]).var(dim=0, unbiased=False).add(1e-8).sqrt()  # (B/g, C, H, W)
    s = std.mean(dim=(1, 2, 3)).to(h.dtype)  # (B/g,)
    return s.repeat(g)[:, None, None, None].expand(b, 1, hh, ww)


Loss = Literal["hinge", "nonsaturating"]


def d_loss(real: torch.Tensor, fake: torch.Tensor, kind: Loss = "hinge") -> torch.Tensor:
    """The discriminator's loss from its scores on real and generated images."""
    if kind == "hinge":
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "nonsaturating":
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    raise ValueError(f"GAN loss {kind!r}: hinge or nonsaturating")


def g_loss(fake: torch.Tensor, kind: Loss = "hinge") -> torch.Tensor:
    """The generator's loss from the discriminator's scores on generated images."""
    if kind == "hinge":
        return -fake.mean()
    if kind == "nonsaturating":
        return F.softplus(-fake).mean()
    raise ValueError(f"GAN loss {kind!r}: hinge or nonsaturating")


def r1_penalty(scores: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean squared gradient norm of the scores w.r.t. the real images (``real`` must require grad); multiply by gamma/2."""
    (grad,) = torch.autograd.grad(scores.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()
