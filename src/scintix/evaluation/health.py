"""Is the evaluated model degenerate? Checks that speak when a run looks fine but is not.

Pure function over what a run already has: raw validation probabilities, the
thresholds chosen on validation, the training history, the selected epoch and
the train-mode/eval-mode gap on training images. Each failed check is a flag
with its value, its limit and one sentence; ``degenerate`` is true when any
flag is raised. The limits are deliberately loose: they catch a collapsed
model (every probability ~0.98, the case that motivated them), not a merely
weak one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

__all__ = ["HealthLimits", "assess_model", "health_banner"]


@dataclass(frozen=True)
class HealthLimits:
    min_span: float = 0.05  # raw validation probabilities of a class must span at least this (max - min)
    edge: float = 0.01  # a threshold within this of 0 or 1 is at the edge ...
    edge_balanced_accuracy: float = 0.9  # ... unless it reaches this balanced accuracy on validation (a near-perfect model's gap can sit at 0.9995)
    loss_ratio: float = 1.5  # selected epoch's val loss above ratio x the lowest val loss ...
    loss_margin: float = 0.1  # ... and above it by this much (tiny losses wobble by large ratios)
    max_gap: float = 0.1  # mean |train-mode - eval-mode| probability on training images


def _flag(check: str, value: float, limit: float, message: str) -> dict:
    return {"check": check, "value": float(value), "limit": float(limit), "message": message}


def assess_model(
    val_probs: np.ndarray | None,
    val_targets: np.ndarray | None,
    task,
    classes: Sequence[str],
    columns: Sequence[int],
    thresholds: dict[str, float],
    history: Sequence[dict] = (),
    selected_epoch: int | None = None,
    train_eval_gap: float | None = None,
    limits: HealthLimits = HealthLimits(),
) -> dict:
    """Flags for a degenerate model; ``{"degenerate": bool, "flags": [...], "checks": {...}}``.

    Args:
        val_probs: raw (uncalibrated) validation probabilities ``(N, K)``; None skips the
            probability checks (segmentation runs, whose outputs are maps).
        task: a task name or object (:mod:`scintix.tasks`).
        val_targets: class indices ``(N,)`` or 0/1 ``(N, K)`` for multi-label.
        columns: the evaluated class columns (binary: ``[1]``).
        thresholds: per evaluated class name, chosen on validation.
        history: rows with ``epoch`` and ``val_loss`` (history.csv).
        selected_epoch: the epoch of the checkpoint evaluated (1-based).
        train_eval_gap: mean |train-mode - eval-mode| probability on training images, if measured.
    """
    from ..tasks import get_task

    task = get_task(task)
    flags, checks = [], {}
    p = np.asarray(val_probs if val_probs is not None else np.zeros((0, len(classes))), dtype=float)
    if len(p):
        spans = {classes[c]: float(p[:, c].max() - p[:, c].min()) for c in columns}
        checks["val_probability_span"] = spans
        for name, span in spans.items():
            if span < limits.min_span:
                flags.append(_flag("probability_span", span, limits.min_span, f"validation probabilities of {name} span only {span:.4f} (min {p[:, classes.index(name)].min():.4f}, max {p[:, classes.index(name)].max():.4f}): the model gives nearly the same answer for every scan"))
        if not task.thresholded:
            y = np.asarray(val_targets).ravel()
            pred = p.argmax(1)
            checks["val_predicted_classes"] = int(len(np.unique(pred)))
            if len(np.unique(pred)) == 1 and len(np.unique(y)) > 1:
                flags.append(_flag("one_class", 1, 2, f"every validation scan is predicted {classes[int(pred[0])]}, while validation holds {len(np.unique(y))} classes"))
        else:
            y = np.asarray(val_targets)
            y = task.one_hot(y, p.shape[1])
            for c in columns:
                above = float(np.mean(p[:, c] >= 0.5))
                checks.setdefault("val_fraction_above_half", {})[classes[c]] = above
                if above in (0.0, 1.0) and len(np.unique(y[:, c])) == 2:
                    side = "above" if above == 1.0 else "below"
                    flags.append(_flag("one_side", above, 0.5, f"every validation probability of {classes[c]} is {side} 0.5 although validation holds both outcomes"))
    balanced = {}
    if len(p) and task.thresholded:
        y = task.one_hot(np.asarray(val_targets), p.shape[1])
        for c in columns:
            t = thresholds.get(classes[c])
            if t is not None and 0 < y[:, c].sum() < len(y):
                balanced[classes[c]] = float((np.mean(p[y[:, c] == 1, c] >= t) + np.mean(p[y[:, c] == 0, c] < t)) / 2)
        checks["val_balanced_accuracy_at_threshold"] = balanced
    for name, t in thresholds.items():
        if (t >= 1 - limits.edge or t <= limits.edge) and not balanced.get(name, 0.0) >= limits.edge_balanced_accuracy:
            flags.append(_flag("threshold_edge", t, limits.edge, f"the threshold for {name} chosen on validation is {t:.4f}, at the edge of [0, 1]: the probabilities carry little information"))
    checks["thresholds"] = dict(thresholds)
    losses = [(int(r["epoch"]), float(r["val_loss"])) for r in history if r.get("val_loss") not in (None, "") and np.isfinite(float(r["val_loss"]))]
    if losses and selected_epoch is not None:
        best_epoch, best_loss = min(losses, key=lambda e: e[1])
        sel = dict(losses).get(int(selected_epoch))
        checks["selected_val_loss"] = sel
        checks["min_val_loss"] = {"epoch": best_epoch, "value": best_loss}
        if sel is not None and sel > limits.loss_ratio * best_loss and sel - best_loss > limits.loss_margin:
            flags.append(_flag("selected_val_loss", sel, limits.loss_ratio * best_loss, f"the selected epoch {selected_epoch} has validation loss {sel:.3f}, {sel / best_loss:.1f}x the lowest ({best_loss:.3f} at epoch {best_epoch}): the selection metric picked a poorly fitted model"))
    if train_eval_gap is not None:
        checks["train_eval_gap"] = float(train_eval_gap)
        if train_eval_gap > limits.max_gap:
            flags.append(_flag("train_eval_gap", train_eval_gap, limits.max_gap, f"on training images, eval-mode probabilities differ from train-mode ones by {train_eval_gap:.3f} on average: the eval-mode model (BatchNorm running statistics) is not the model that was trained"))
    return {"degenerate": bool(flags), "flags": flags, "checks": checks, "limits": limits.__dict__}


def health_banner(health: dict | None) -> str:
    """One line for printed tables (empty when the model passed every check)."""
    if not health or not health.get("degenerate"):
        return ""
    return "*** MODEL CHECK FAILED: " + " | ".join(f["message"] for f in health["flags"]) + " ***"
