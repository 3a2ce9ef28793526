"""The loop: ``train_one_epoch`` and ``predict``, flat functions over a model and a loader."""

from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import torch
from torch import nn

from .perf import autocast

__all__ = ["make_criterion", "probabilities", "train_one_epoch", "predict"]


def make_criterion(task: str, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0) -> nn.Module:
    """Cross-entropy for binary/multi-class (softmax over K logits), BCE for multi-label."""
    if task == "multilabel":
        return nn.BCEWithLogitsLoss(pos_weight=class_weights)
    return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)


def probabilities(logits: torch.Tensor, task: str) -> torch.Tensor:
    return torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, dim=1)


def _prepare(x: torch.Tensor, y: torch.Tensor, device: torch.device, channels_last: bool, task: str) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = y.to(device, non_blocking=True)
    return x, (y.float() if task == "multilabel" else y.long())


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    device: torch.device,
    task: str = "binary",
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "train",
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and images/s.

    Raises:
        FloatingPointError: the loss became NaN or infinite (lower the learning rate).
    """
    import time

    from tqdm.auto import tqdm

    model.train()
    total, n = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, leave=False, disable=None if progress else True)  # None: only on a terminal
    for x, y, _ in bar:
        x, y = _prepare(x, y, device, channels_last, task)
        with autocast(device, amp_dtype):
            loss = criterion(model(x).float(), y)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at image {n}; lower train.lr or check the inputs")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        total += loss.item() * len(x)
        n += len(x)
        bar.set_postfix(loss=f"{total / n:.4f}")
    seconds = time.perf_counter() - start
    return {"loss": total / max(n, 1), "images_per_s": n / seconds if seconds > 0 else float("nan")}


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    task: str = "binary",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    criterion: nn.Module | None = None,
    temperature: float = 1.0,
) -> dict[str, np.ndarray | float]:
    """Probabilities and raw logits ``(N, K)`` in loader order, dataset indices, and the mean loss when a criterion is given."""
    model.eval()
    probs, logit_list, idx, total, n = [], [], [], 0.0, 0
    for x, y, i in loader:
        x, y = _prepare(x, y, device, channels_last, task)
        with autocast(device, amp_dtype):
            logits = model(x).float()
        if criterion is not None:
            total += criterion(logits, y).item() * len(x)
        n += len(x)
        probs.append(probabilities(logits / temperature, task).cpu().numpy())
        logit_list.append(logits.cpu().numpy())
        idx.append(np.asarray(i))
    k = getattr(model, "num_classes", 2)
    return {
        "probs": np.concatenate(probs) if probs else np.zeros((0, k)),
        "logits": np.concatenate(logit_list) if logit_list else np.zeros((0, k)),
        "index": np.concatenate(idx) if idx else np.zeros((0,), int),
        "loss": total / n if (criterion is not None and n) else float("nan"),
    }
