"""The loop: ``train_one_epoch`` and ``predict``, flat functions over a model, a task and a loader of dict batches.

A batch is a dict (see :mod:`scintix.data.datasets`): ``image`` always, the
target under the task's ``target_key`` (``target`` or ``mask``), and optional
inputs (``cross``, ``text``). A model declares the inputs it takes beyond the
image in ``model.inputs`` (default ``("image",)``); :func:`forward` passes
those, so a multi-input model needs no special case here.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..runtime import autocast
from ..tasks import Task, get_task
from .batchnorm import hold_frozen_batchnorm
from .distributed import unwrap

__all__ = ["make_criterion", "probabilities", "forward", "train_one_epoch", "predict"]


def make_criterion(task: str | Task, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0) -> nn.Module:
    """The task's loss (cross-entropy, BCE for multi-label, Dice + CE for segmentation)."""
    return get_task(task).criterion(class_weights, label_smoothing)


def probabilities(logits: torch.Tensor, task: str | Task) -> torch.Tensor:
    return get_task(task).activation(logits)


def model_inputs(model: nn.Module) -> tuple[str, ...]:
    return tuple(getattr(unwrap(model), "inputs", ("image",)))  # through a DDP wrapper


def forward(model: nn.Module, batch: dict, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """The model's logits for a batch: the image plus those extra inputs the model declares that the batch holds.

    A declared input the data does not give is left to the model's default (P3's cross-feature
    model then uses the image itself); the run says so when it builds the datasets.
    """
    extra = {}
    for name in model_inputs(model)[1:]:
        if name in batch:
            v = batch[name]
            extra[name] = v.to(device, non_blocking=True) if torch.is_tensor(v) else v
    x = batch["image"].to(device, non_blocking=True)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return model(x, **extra)


def _target(batch: dict, task: Task, device: torch.device) -> torch.Tensor:
    return task.encode_target(batch[task.target_key].to(device, non_blocking=True))


def _names(batch: dict, dataset) -> str:
    idx = batch.get("index")
    samples = getattr(dataset, "samples", None)
    if idx is None or samples is None:
        return "?"
    keys = [samples[int(i)].key for i in idx]
    return ", ".join(keys[:4]) + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")


def train_one_epoch(
    model: nn.Module,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: Iterable,
    device: torch.device,
    task: str | Task = "binary",
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
    channels_last: bool = False,
    progress: bool = False,
    desc: str = "train",
    augment=None,
    on_step: Callable[[], None] | None = None,
) -> dict[str, float]:
    """One pass over ``loader``; returns mean loss and images/s.

    ``augment`` (a :class:`~scintix.transforms.batch_augment.BatchAugmenter`)
    transforms each batch whose items carry ``aug_seed``, on ``device``;
    ``on_step`` is called after every optimizer step (e.g. a weight average).

    Raises:
        FloatingPointError: the loss became NaN or infinite; the message names the batch's files.
    """
    import time

    from tqdm.auto import tqdm

    task = get_task(task)
    model.train()
    hold_frozen_batchnorm(model)  # frozen layers keep their running statistics too
    total, n = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=desc, leave=False, disable=None if progress else True)  # None: only on a terminal
    for batch in bar:
        if augment is not None and "aug_seed" in batch:
            batch = augment({k: v.to(device, non_blocking=True) if k in ("image", "mask", "cross") and torch.is_tensor(v) else v for k, v in batch.items()})
        y = _target(batch, task, device)
        with autocast(device, amp_dtype):
            loss = criterion(forward(model, batch, device, channels_last).float(), y)
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"loss is {loss.item()} at image {n} (batch of {_names(batch, getattr(loader, 'dataset', None))}); lower train.lr or check these inputs")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if on_step is not None:
            on_step()
        b = len(batch["image"])
        total += loss.item() * b
        n += b
        bar.set_postfix(loss=f"{total / n:.4f}")
    seconds = time.perf_counter() - start
    return {"loss": total / max(n, 1), "images_per_s": n / seconds if seconds > 0 else float("nan")}


@torch.no_grad()
def predict(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    task: str | Task = "binary",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    criterion: nn.Module | None = None,
    temperature: float = 1.0,
) -> dict[str, np.ndarray | float]:
    """Probabilities and raw logits in loader order (``(N, K)``, or ``(N, K, H, W)`` for segmentation),
    dataset indices, and the mean loss when a criterion is given."""
    task = get_task(task)
    model.eval()
    probs, logit_list, idx, total, n = [], [], [], 0.0, 0
    for batch in loader:
        with autocast(device, amp_dtype):
            logits = forward(model, batch, device, channels_last).float()
        b = len(batch["image"])
        if criterion is not None:
            total += criterion(logits, _target(batch, task, device)).item() * b
        n += b
        probs.append(task.activation(logits / temperature).cpu().numpy())
        logit_list.append(logits.cpu().numpy())
        idx.append(np.asarray(batch["index"]))
    k = getattr(model, "num_classes", 2)
    return {
        "probs": np.concatenate(probs) if probs else np.zeros((0, k)),
        "logits": np.concatenate(logit_list) if logit_list else np.zeros((0, k)),
        "index": np.concatenate(idx) if idx else np.zeros((0,), int),
        "loss": total / n if (criterion is not None and n) else float("nan"),
    }
