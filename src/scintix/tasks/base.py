"""The task interface: what a kind of task decides, so the spine never compares task names.

A task owns the loss, the output activation, how targets are encoded and
batched, what is scored while training, how thresholds are chosen on
validation, the evaluation, the decision for one output, and what CAMs and
calibration treat as "the target". Classification tasks (binary, multi-class,
multi-label) live in :mod:`.classification`, segmentation in
:mod:`.segmentation`; :func:`scintix.tasks.get_task` returns one by name.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["Task"]


class Task:
    """Base class; subclasses override what differs. ``name`` is the config value (``data.task``)."""

    name: str = ""
    target_key: str = "target"  # the sample field the loss compares with ("mask" for segmentation)
    multilabel: bool = False  # labels are sets of class names joined by ";"
    dense: bool = False  # one output per pixel (segmentation)
    n_classes: int | None = None  # a fixed number of classes (binary: 2)
    thresholded: bool = True  # decisions by per-class thresholds chosen on validation (multi-class: arg-max)
    select_metrics: tuple[str, ...] = ("loss",)  # what may pick the best epoch (loss: lower wins, the rest: higher)

    def criterion(self, class_weights: torch.Tensor | None = None, label_smoothing: float = 0.0, focal_gamma: float = 0.0) -> nn.Module:
        raise NotImplementedError

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> probabilities (softmax over dim 1, or sigmoid)."""
        raise NotImplementedError

    def encode_target(self, target: torch.Tensor) -> torch.Tensor:
        """A batched target as the criterion wants it (dtype, shape)."""
        return target

    def class_weights(self, targets: np.ndarray, k: int) -> torch.Tensor:
        """Inverse-frequency weights for an imbalanced training set."""
        raise NotImplementedError

    def columns(self, k: int) -> list[int]:
        """The output columns that are evaluated (binary: the positive class only)."""
        return list(range(k))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def group_stratum(self, targets: np.ndarray) -> str:
        """The stratum of a patient group (its samples' targets stacked) for label-stratified splits."""
        raise NotImplementedError

    def describe_target(self, target: np.ndarray, classes: Sequence[str]) -> str:
        raise NotImplementedError
