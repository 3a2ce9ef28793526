"""An exponential moving average of a model's weights (timm's ``ModelEma``; the GAN's generator average).

The average of the last few hundred optimizer steps sits in a flatter part of
the loss than any single step, so its validation score moves less from epoch
to epoch, and a checkpoint selected on a small validation split is less a
matter of luck (issue 14: ~16 inner-validation positives per fold).
"""

from __future__ import annotations

import torch


def ema_decay(decay: float, step: int) -> float:
    """The decay for update ``step`` (0-based), warmed up: ``min(decay, (1 + step) / (10 + step))``, so early weights fade fast."""
    return min(decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for every parameter; buffers (BatchNorm statistics) are copied; decay 0 copies the model."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p.detach(), 1 - decay)
    for be, b in zip(ema.buffers(), model.buffers()):
        be.copy_(b)
