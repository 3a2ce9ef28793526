"""Probability calibration: temperature scaling, expected calibration error, reliability diagrams.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar
``T > 0`` fitted by minimising the negative log-likelihood on the validation
set. It does not change which class is largest, so accuracy and (binary,
multi-class) AUC stay the same; only the probabilities move.

ECE is measured on the *top-label* confidence for binary and multi-class
models, and per class on each sigmoid for multi-label models (then averaged),
with equal-width bins.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["fit_temperature", "apply_temperature", "expected_calibration_error", "reliability_curve", "plot_reliability"]


def _nll(logits: torch.Tensor, targets: torch.Tensor, task: str) -> torch.Tensor:
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(logits, targets.float())
    return F.cross_entropy(logits, targets.long().view(-1))


def fit_temperature(logits: np.ndarray, targets: np.ndarray, task: str, max_iter: int = 200) -> float:
    """The temperature minimising validation NLL (optimised in log-space, so it stays positive).

    Returns 1.0 (no change) when there are fewer than two validation samples.
    """
    logits_t = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    targets_t = torch.as_tensor(np.asarray(targets))
    if len(logits_t) < 2:
        return 1.0
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = _nll(logits_t / log_t.exp(), targets_t, task)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.exp().item())
    return t if np.isfinite(t) and 1e-2 < t < 1e2 else 1.0


def apply_temperature(logits: np.ndarray, temperature: float, task: str) -> np.ndarray:
    """Calibrated probabilities: softmax (binary/multi-class) or sigmoid (multi-label) of logits / T."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)) / float(temperature)
    p = torch.sigmoid(z) if task == "multilabel" else torch.softmax(z, dim=1)
    return p.numpy().astype(np.float32)


def _conf_correct(probs: np.ndarray, targets: np.ndarray, task: str) -> list[tuple[np.ndarray, np.ndarray]]:
    probs = np.asarray(probs, dtype=np.float64)
    if task == "multilabel":
        y = np.asarray(targets).reshape(probs.shape)
        return [(probs[:, k], y[:, k].astype(float)) for k in range(probs.shape[1])]
    y = np.asarray(targets).reshape(-1)
    return [(probs.max(axis=1), (probs.argmax(axis=1) == y).astype(float))]


def reliability_curve(confidence: np.ndarray, outcome: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Per equal-width bin: mean confidence, observed frequency and count (empty bins are NaN / 0)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    count = np.bincount(which, minlength=n_bins).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        conf = np.bincount(which, weights=confidence, minlength=n_bins) / count
        freq = np.bincount(which, weights=outcome, minlength=n_bins) / count
    return {"edges": edges, "confidence": conf, "frequency": freq, "count": count}


def expected_calibration_error(probs: np.ndarray, targets: np.ndarray, task: str, n_bins: int = 15) -> float:
    """ECE: count-weighted mean |observed frequency - confidence| over bins (0 = perfectly calibrated)."""
    eces = []
    for conf, outcome in _conf_correct(probs, targets, task):
        if len(conf) == 0:
            continue
        c = reliability_curve(conf, outcome, n_bins)
        ok = c["count"] > 0
        eces.append(float(np.sum(c["count"][ok] * np.abs(c["frequency"][ok] - c["confidence"][ok])) / c["count"].sum()))
    return float(np.mean(eces)) if eces else float("nan")


def plot_reliability(path, before: np.ndarray, after: np.ndarray, targets: np.ndarray, task: str, title: str = "", n_bins: int = 15) -> None:
    """Reliability diagram, raw and temperature-scaled, with the ECE of each in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 4.2), dpi=110)
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect")
    for probs, name, colour in ((before, "raw", "tab:red"), (after, "temperature-scaled", "tab:blue")):
        conf = np.concatenate([c for c, _ in _conf_correct(probs, targets, task)])
        out = np.concatenate([o for _, o in _conf_correct(probs, targets, task)])
        c = reliability_curve(conf, out, n_bins)
        ok = c["count"] > 0
        ece = expected_calibration_error(probs, targets, task, n_bins)
        ax.plot(c["confidence"][ok], c["frequency"][ok], marker="o", c=colour, label=f"{name} (ECE {ece:.3f})")
    ax.set_xlabel("predicted probability" if task == "multilabel" else "confidence (top class)")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
