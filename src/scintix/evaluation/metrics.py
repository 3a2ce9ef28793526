"""Binary classification metrics as pure functions of numpy arrays.

Conventions: ``y`` holds 0/1 targets, ``score`` a probability (or any score
where higher means positive), ``pred`` 0/1 decisions. A metric whose
denominator is zero is NaN (undefined), never 0 or 1: e.g. precision when
nothing is predicted positive, AUC when only one class is present.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "sample_based",
    "confusion_counts",
    "metrics_from_counts",
    "roc_auc",
    "pr_auc",
    "binary_metrics",
    "COUNT_METRICS",
    "RANK_METRICS",
]

COUNT_METRICS = ("accuracy", "precision", "recall", "specificity", "f1", "balanced_accuracy")
RANK_METRICS = ("roc_auc", "pr_auc")


def confusion_counts(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``[tp, fp, fn, tn]`` as floats (floats so weighted/bootstrapped counts fit too)."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(pred).astype(bool)
    return np.array([np.sum(y & pred), np.sum(~y & pred), np.sum(y & ~pred), np.sum(~y & ~pred)], dtype=np.float64)


def _div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def metrics_from_counts(counts: np.ndarray) -> dict[str, np.ndarray]:
    """Count-based metrics from ``[..., 4]`` counts (tp, fp, fn, tn); vectorised over leading dims."""
    c = np.asarray(counts, dtype=np.float64)
    tp, fp, fn, tn = c[..., 0], c[..., 1], c[..., 2], c[..., 3]
    precision = _div(tp, tp + fp)
    recall = _div(tp, tp + fn)
    specificity = _div(tn, tn + fp)
    return {
        "accuracy": _div(tp + tn, tp + fp + fn + tn),
        "precision": precision,
        "recall": recall,
        "specificity": specificity,
        "f1": _div(2 * tp, 2 * tp + fp + fn),
        # nanmean would hide an undefined half; balanced accuracy needs both classes.
        "balanced_accuracy": (recall + specificity) / 2,
    }


def roc_auc(y: np.ndarray, score: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Area under the ROC curve; NaN when only one class is present.

    The weighted Mann-Whitney statistic, ties counted half: the trapezoidal
    area sklearn's ``roc_auc_score`` gives (tested equal), without its
    per-call validation overhead, which dominated patient bootstraps (1,000+
    weighted AUCs per CI).
    """
    y = np.asarray(y).astype(int).ravel()
    score = np.asarray(score, dtype=float).ravel()
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float).ravel()
    pos_w, neg_w = w * (y == 1), w * (y != 1)
    p, n = pos_w.sum(), neg_w.sum()
    if p <= 0 or n <= 0:
        return float("nan")
    _, inv = np.unique(score, return_inverse=True)  # tied scores share one rank
    wp, wn = np.bincount(inv, weights=pos_w), np.bincount(inv, weights=neg_w)
    below = np.cumsum(wn) - wn  # negative weight strictly below each distinct score
    return float(np.sum(wp * (below + 0.5 * wn)) / (p * n))


def pr_auc(y: np.ndarray, score: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """Average precision (area under the precision-recall curve, sklearn's step definition); NaN without positives.

    sum over distinct scores, descending, of (recall gained) x (precision there); in numpy for the bootstraps (tested equal to sklearn).
    """
    y = np.asarray(y).astype(int).ravel()
    score = np.asarray(score, dtype=float).ravel()
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, dtype=float).ravel()
    pos_w, neg_w = w * (y == 1), w * (y != 1)
    p = pos_w.sum()
    if p <= 0:
        return float("nan")
    _, inv = np.unique(-score, return_inverse=True)  # distinct scores, highest first
    tp, fp = np.cumsum(np.bincount(inv, weights=pos_w)), np.cumsum(np.bincount(inv, weights=neg_w))
    called = tp + fp
    precision = np.divide(tp, called, out=np.zeros_like(tp), where=called > 0)
    gained = np.diff(np.concatenate([[0.0], tp])) / p
    return float(np.sum(gained * precision))


def binary_metrics(y: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict[str, float]:
    """All point metrics at ``threshold`` (``score >= threshold`` is positive) plus AUCs.

    >>> binary_metrics(np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]))["accuracy"]
    0.5
    """
    y = np.asarray(y)
    score = np.asarray(score, dtype=float)
    out = {k: float(v) for k, v in metrics_from_counts(confusion_counts(y, score >= threshold)).items()}
    out["roc_auc"] = roc_auc(y, score)
    out["pr_auc"] = pr_auc(y, score)
    return out


def sample_based(y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Multi-label, per sample (example-based, as P2 reports them): ``{metric: (N,) values}``; their means are the metrics.

    With ``Y`` the true and ``P`` the predicted label sets of a sample:
    accuracy ``|Y & P| / |Y | P|`` (Jaccard), precision ``|Y & P| / |P|``,
    sensitivity ``|Y & P| / |Y|``, specificity ``|~Y & ~P| / |~Y|``, F1
    ``2 |Y & P| / (|Y| + |P|)``, exact match ``Y == P``. An empty denominator
    scores 1 when its numerator's sets agree (both empty), else 0.

    >>> {k: v.tolist() for k, v in sample_based(np.array([[1, 0, 1]]), np.array([[1, 1, 0]])).items()}["accuracy"]
    [0.3333333333333333]
    """
    y, p = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    inter, union = (y & p).sum(1), (y | p).sum(1)
    ny, np_, neg_both, neg_y = y.sum(1), p.sum(1), (~y & ~p).sum(1), (~y).sum(1)

    def ratio(num, den, agree):
        return np.where(den > 0, num / np.maximum(den, 1), agree.astype(float))

    return {
        "accuracy": ratio(inter, union, union == 0),
        "precision": ratio(inter, np_, ny == 0),
        "sensitivity": ratio(inter, ny, np_ == 0),
        "specificity": ratio(neg_both, neg_y, (~p).sum(1) == 0),
        "f1": ratio(2 * inter, ny + np_, ny + np_ == 0),
        "exact_match": (y == p).all(1).astype(float),
    }
