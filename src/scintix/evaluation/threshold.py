"""Choosing the operating threshold, always on validation data."""

from __future__ import annotations

from typing import Literal

import numpy as np

__all__ = ["choose_threshold", "ThresholdMethod"]

ThresholdMethod = Literal["youden", "specificity", "fixed"]


def choose_threshold(
    y: np.ndarray, score: np.ndarray, method: ThresholdMethod = "youden", target_specificity: float = 0.9, fixed: float = 0.5
) -> float:
    """Threshold on ``score`` (``score >= t`` is positive).

    ``youden`` maximises sensitivity + specificity - 1; ``specificity`` takes the
    lowest threshold whose specificity is at least ``target_specificity`` (the
    most sensitive such point); ``fixed`` returns ``fixed``. With one class only,
    the ROC is undefined and ``fixed`` is returned.
    """
    from sklearn.metrics import roc_curve

    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=float)
    if method == "fixed" or len(np.unique(y)) < 2:
        return float(fixed)
    fpr, tpr, thr = roc_curve(y, score, drop_intermediate=False)
    finite = np.isfinite(thr)
    fpr, tpr, thr = fpr[finite], tpr[finite], thr[finite]
    if method == "youden":
        j = tpr - fpr
        best = np.flatnonzero(j == j.max())
        # Among equal-J points take the middle one: less sensitive to the exact validation scores.
        return float(thr[best[len(best) // 2]])
    if method == "specificity":
        ok = np.flatnonzero(1 - fpr >= target_specificity)
        return float(thr[ok[-1]]) if len(ok) else float(thr[0])
    raise ValueError(f"unknown threshold method {method!r}; choose from youden, specificity, fixed")
