"""BatchNorm statistics that match the weights: recompute them, and measure when they do not.

Why this exists: BatchNorm normalises with the current batch while training
and with running averages (momentum 0.1) in eval mode. The running variance
starts at 1.0, and the first layer of a scan model sees activations with a
variance near 0.002 (intensities in [0, 1], mostly dark background). The start
value decays as ``0.9 ** steps``: after the quickstart's 60 optimiser steps it
still weighs about as much as the real variance, so the eval-mode model
normalised its first layer by ~2x the true spread, the error compounded
layer by layer, and every validation probability landed near 0.98 while the
same weights in train mode separated the classes. Recomputing the statistics
with the final weights on training batches drawn as in training (same
sampler, so balanced batches stay balanced) but not augmented, in a forward
pass without gradients ("precise BN"), removes the stale start value and the
lag behind the weights, whatever the number of steps.

A BatchNorm whose scale and shift are frozen (``model.train_only``, P3's
stage 2; ``model.freeze_backbone``) is frozen whole: it stays in eval mode
while the rest trains, and precise BN leaves its statistics alone, as timm's
``freeze`` does with FrozenBatchNorm. Otherwise "frozen" layers would still
drift toward the new training set through their running statistics.
"""

from __future__ import annotations

import copy
from typing import Callable, Iterable

import torch
from torch import nn

__all__ = ["has_batchnorm", "frozen_batchnorm", "hold_frozen_batchnorm", "recompute_batchnorm", "train_eval_gap"]

_BN = (nn.modules.batchnorm._BatchNorm,)


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BN) and m.track_running_stats for m in model.modules())


def frozen_batchnorm(model: nn.Module) -> list[nn.Module]:
    """BatchNorm layers with running statistics whose affine parameters are all frozen (``requires_grad`` False)."""
    return [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats and m.affine
            and not any(p.requires_grad for p in m.parameters(recurse=False))]


def hold_frozen_batchnorm(model: nn.Module) -> int:
    """Put the frozen BatchNorm layers in eval mode (call after ``model.train()``); returns how many."""
    frozen = frozen_batchnorm(model)
    for m in frozen:
        m.eval()
    return len(frozen)


@torch.no_grad()
def recompute_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor], forward: Callable[[nn.Module, torch.Tensor], object] | None = None) -> int:
    """Replace every trainable BatchNorm's running statistics by the exact average over ``batches``.

    Only the BatchNorm layers run in train mode (dropout and the rest stay in
    eval mode), momentum is set to None (a cumulative average), and the model's
    previous modes and momenta are restored. Frozen BatchNorm layers
    (:func:`frozen_batchnorm`) keep theirs. Returns the number of batches used;
    with none, the statistics are left as they were.

    Args:
        model: the network.
        batches: input tensors, already on the model's device and layout.
        forward: how to call the model on one batch (default ``model(x)``).
    """
    frozen = {id(m) for m in frozen_batchnorm(model)}
    bns = [m for m in model.modules() if isinstance(m, _BN) and m.track_running_stats and id(m) not in frozen]
    if not bns:
        return 0
    was_training = model.training
    saved = [(m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    model.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative moving average: every batch weighs the same
        m.train()
    n = 0
    for x in batches:
        (forward or (lambda mod, t: mod(t)))(model, x)
        n += 1
    for m, (momentum, mean, var, count) in zip(bns, saved):
        m.momentum = momentum
        if n == 0:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(count)
    model.train(was_training)
    if was_training:
        hold_frozen_batchnorm(model)
    return n


@torch.no_grad()
def train_eval_gap(model: nn.Module, x: torch.Tensor, to_probs: Callable[[torch.Tensor], torch.Tensor], **extra: torch.Tensor) -> float:
    """Mean absolute difference between train-mode and eval-mode probabilities on one batch.

    Train mode normalises by this batch's statistics, eval mode by the running
    ones: on training images without augmentation the two agree closely in a
    healthy model (they differ only by batch sampling noise), so a large gap
    means the eval-mode model is not the one that was trained. A copy runs in
    train mode, so the model's running statistics are not touched. Dropout is
    kept off in both, so only normalisation differs. ``extra`` holds the
    model's other named inputs; for a segmenter the gap is averaged over pixels.
    """
    eval_p = to_probs(model.eval()(x, **extra).float())
    twin = copy.deepcopy(model).eval()
    for m in twin.modules():
        if isinstance(m, _BN):
            m.train()
    train_p = to_probs(twin(x, **extra).float())
    return float((train_p - eval_p).abs().mean())
