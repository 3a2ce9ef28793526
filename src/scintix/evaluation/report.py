"""Classification outputs of a run: the predictions file, ROC/PR/confusion plots, the printed table.

Metrics, thresholds and decisions belong to the task (:mod:`scintix.tasks`); binary runs plot
the positive class, multi-class and multi-label runs every class one-vs-rest.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from ..tasks import get_task
from ..tasks.classification import TABLE_METRICS

__all__ = ["write_predictions", "plot_roc", "plot_pr", "plot_confusion", "format_table", "save_json"]



def write_predictions(path: str | Path, samples, probs: np.ndarray, thresholds: dict[str, float], task, classes: Sequence[str]) -> Path:
    """One row per sample: paths, patient, target, probability per class, decision."""
    task = get_task(task)
    path = Path(path)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "patient_id", "target"] + [f"prob_{c}" for c in classes] + ["predicted"])
        for s, p in zip(samples, probs):
            w.writerow([s.key, s.patient_id, task.describe_target(s.target, classes)] + [f"{v:.6f}" for v in p] + [task.decide(p, thresholds, classes)])
    return path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(path: str | Path, probs: np.ndarray, targets: np.ndarray, task: str, classes: Sequence[str], title: str) -> None:
    """ROC curve per class (one-vs-rest), the chance diagonal dotted."""
    _plot_curves(path, probs, targets, task, classes, title, "roc")


def plot_pr(path: str | Path, probs: np.ndarray, targets: np.ndarray, task: str, classes: Sequence[str], title: str) -> None:
    """Precision-recall curve per class (one-vs-rest), each class's prevalence dotted."""
    _plot_curves(path, probs, targets, task, classes, title, "pr")


def _plot_curves(path, probs, targets, task, classes, title, kind: str) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    plt = _plt()
    task = get_task(task)
    y = task.one_hot(targets, probs.shape[1])
    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=100)
    for c in task.columns(len(classes)):
        if len(np.unique(y[:, c])) == 2:
            if kind == "roc":
                fpr, tpr, _ = roc_curve(y[:, c], probs[:, c])
                ax.plot(fpr, tpr, label=str(classes[c]))
            else:
                prec, rec, _ = precision_recall_curve(y[:, c], probs[:, c])
                line = ax.plot(rec, prec, label=str(classes[c]))[0]
                ax.axhline(y[:, c].mean(), ls=":", lw=0.8, c=line.get_color())
    if kind == "roc":
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=title, xlim=(0, 1), ylim=(0, 1.01))
    else:
        ax.set(xlabel="recall (sensitivity)", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.01))
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right" if kind == "roc" else "lower left", fontsize=8)
    else:
        ax.text(0.5, 0.5, f"one class only:\n{kind.upper()} undefined", ha="center", va="center")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_confusion(path: str | Path, probs: np.ndarray, targets: np.ndarray, thresholds: dict[str, float], task: str, classes: Sequence[str], title: str) -> None:
    task = get_task(task)
    if task.multilabel:
        return  # one 2x2 matrix per label lives in metrics.json; a single matrix does not exist
    plt = _plt()
    pred = np.array([task.decision_index(p, thresholds, classes) for p in probs], int)
    t = np.asarray(targets).astype(int).ravel()
    k = len(classes)
    m = np.zeros((k, k), int)
    np.add.at(m, (t, pred), 1)
    fig, ax = plt.subplots(figsize=(3.8, 3.4), dpi=100)
    ax.imshow(m, cmap="Blues")
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(m[i, j]), ha="center", va="center", color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set(xticks=range(k), yticks=range(k), xticklabels=classes, yticklabels=classes, xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _fmt(v: dict) -> str:
    if not math.isfinite(v["value"]):
        return "n/a"
    ci = "" if not math.isfinite(v["ci_low"]) else f" [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"
    return f"{v['value']:.3f}{ci}"


def format_table(results: dict[str, dict], synthetic: bool = False) -> str:
    """A plain-text table: one row per metric, one column per split (value [95% CI])."""
    lines = []
    if synthetic:
        lines.append("*** SYNTHETIC DATA: these numbers say nothing about real scans ***")
    for cls in next(iter(results.values()))["per_class"]:
        header = f"{'class ' + cls:<20}" + "".join(f"{s:<28}" for s in results)
        lines.append(header)
        lines.append("-" * len(header))
        for m in TABLE_METRICS:
            lines.append(f"{m:<20}" + "".join(f"{_fmt(r['per_class'][cls][m]):<28}" for r in results.values()))
        lines.append(f"{'threshold':<20}" + "".join(f"{r['thresholds'][cls]:<28.4f}" for r in results.values()))
        lines.append(f"{'n (patients)':<20}" + "".join(f"{str(r['n']) + ' (' + str(r['patients']) + ')':<28}" for r in results.values()))
    first = next(iter(results.values()))
    if "sample_based" in first:  # multi-label: per-sample set agreement (P2's table)
        header = f"{'sample-based':<20}" + "".join(f"{s:<28}" for s in results)
        lines += [header, "-" * len(header)]
        for m in first["sample_based"]:
            lines.append(f"{m:<20}" + "".join(f"{_fmt(r['sample_based'][m]):<28}" for r in results.values()))
    return "\n".join(lines)


def save_json(path: str | Path, obj) -> None:
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None  # JSON has no NaN; null means undefined
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.generic):
            return clean(v.item())
        return v

    Path(path).write_text(json.dumps(clean(obj), indent=2))
