"""Probability calibration: temperature scaling, expected calibration error, reliability diagrams.

Temperature scaling (Guo et al., 2017) divides the logits by one scalar
``T > 0`` fitted by minimising the negative log-likelihood on the validation
set. It does not change which class is largest, so accuracy and (binary,
multi-class) AUC stay the same; only the probabilities move.

ECE is measured on the *top-label* confidence for binary and multi-class
models, and per class on each sigmoid for multi-label models (then averaged),
with equal-width bins.

A fit can fail, and says so: when the NLL optimum lies outside
``TEMPERATURE_BOUNDS`` (nearly constant logits push it towards infinity), or
when the fitted temperature makes the validation ECE worse than the raw
probabilities, the raw probabilities are kept (T = 1) and the
:class:`TemperatureFit` records the optimum, the bound and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..tasks import get_task

TEMPERATURE_BOUNDS = (1e-2, 1e2)

__all__ = ["TemperatureFit", "TEMPERATURE_BOUNDS", "calibrate_temperature", "fit_temperature", "apply_temperature", "expected_calibration_error", "reliability_curve", "plot_reliability"]


def _nll(logits: torch.Tensor, targets: torch.Tensor, task) -> torch.Tensor:
    return get_task(task).nll(logits, targets)


@dataclass(frozen=True)
class TemperatureFit:
    """What temperature scaling did: the temperature applied, and whether it was really fitted.

    ``status`` is ``fitted``, ``out_of_range`` (the NLL optimum lies beyond a
    bound), ``worse_ece`` (the optimum made the validation ECE worse),
    ``too_few`` (under two validation samples) or ``disabled``; in every case
    but ``fitted`` the applied temperature is 1.0 (raw probabilities).
    """

    temperature: float
    status: str
    optimum: float | None = None  # the NLL optimum found, kept even when it was rejected
    bounds: tuple[float, float] = TEMPERATURE_BOUNDS
    ece_raw: float | None = None  # on the fitting (validation) data
    ece_fitted: float | None = None  # same data, with the optimum applied
    reason: str = ""

    @property
    def fitted(self) -> bool:
        return self.status == "fitted"

    def describe(self) -> str:
        """One line for tables, reports and model cards."""
        if self.fitted:
            return f"T = {self.temperature:.3f}, fitted on validation (NLL)"
        if self.status == "disabled":
            return "not calibrated (eval.calibrate=false)"
        if self.status == "worse_ece":  # the raw probabilities were already the better calibrated: nothing failed
            return f"not applied, raw probabilities kept (T = 1): {self.reason}"
        return f"calibration FAILED, raw probabilities kept (T = 1): {self.reason}"

    def to_dict(self) -> dict:
        return {**asdict(self), "bounds": list(self.bounds), "fitted": self.fitted, "summary": self.describe()}


def _nll_optimum(logits_t: torch.Tensor, targets_t: torch.Tensor, task: str, max_iter: int) -> float:
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = _nll(logits_t / log_t.exp(), targets_t, task)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp().item())


def calibrate_temperature(logits: np.ndarray, targets: np.ndarray, task: str, max_iter: int = 200, bounds: tuple[float, float] = TEMPERATURE_BOUNDS, check_ece: bool = True) -> TemperatureFit:
    """Fit T by validation NLL (in log-space, so it stays positive) and check that it is usable.

    Rejected (raw probabilities kept, the reason recorded): an optimum that is
    not finite or lies outside ``bounds``, and, with ``check_ece``, one whose
    validation ECE is worse than the raw probabilities' (NLL and ECE can
    disagree on small or odd validation sets).
    """
    logits_t = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    targets_t = torch.as_tensor(np.asarray(targets))
    if len(logits_t) < 2:
        return TemperatureFit(1.0, "too_few", bounds=bounds, reason=f"{len(logits_t)} validation sample(s); at least 2 are needed")
    t = _nll_optimum(logits_t, targets_t, task, max_iter)
    lo, hi = bounds
    if not np.isfinite(t) or not lo < t < hi:
        if not np.isfinite(t):
            why = f"the NLL optimisation diverged (T = {t})"
        elif t >= hi:
            why = (f"the NLL optimum T = {t:.4g} is above the upper bound {hi:g}: the validation logits are nearly constant or "
                   "unrelated to the labels, so no temperature makes them informative (is the model degenerate?)")
        else:
            why = f"the NLL optimum T = {t:.4g} is below the lower bound {lo:g}: it would turn every probability into 0 or 1"
        return TemperatureFit(1.0, "out_of_range", optimum=t if np.isfinite(t) else None, bounds=bounds, reason=why)
    if check_ece:
        raw = expected_calibration_error(apply_temperature(logits, 1.0, task), targets, task)
        fitted = expected_calibration_error(apply_temperature(logits, t, task), targets, task)
        if np.isfinite(raw) and np.isfinite(fitted) and fitted > raw:
            return TemperatureFit(1.0, "worse_ece", optimum=t, bounds=bounds, ece_raw=raw, ece_fitted=fitted,
                                  reason=f"the NLL optimum T = {t:.3f} raised the validation ECE from {raw:.4f} to {fitted:.4f}")
        return TemperatureFit(t, "fitted", optimum=t, bounds=bounds, ece_raw=raw, ece_fitted=fitted)
    return TemperatureFit(t, "fitted", optimum=t, bounds=bounds)


def fit_temperature(logits: np.ndarray, targets: np.ndarray, task: str, max_iter: int = 200) -> float:
    """The NLL temperature if it is usable, else 1.0 (see :func:`calibrate_temperature` for why)."""
    return calibrate_temperature(logits, targets, task, max_iter, check_ece=False).temperature


def apply_temperature(logits: np.ndarray, temperature: float, task: str) -> np.ndarray:
    """Calibrated probabilities: softmax (binary/multi-class) or sigmoid (multi-label) of logits / T."""
    z = torch.as_tensor(np.asarray(logits, dtype=np.float64)) / float(temperature)
    return get_task(task).activation(z).numpy().astype(np.float32)


def _conf_correct(probs: np.ndarray, targets: np.ndarray, task) -> list[tuple[np.ndarray, np.ndarray]]:
    return get_task(task).confidences(probs, targets)


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
    ax.set_xlabel("predicted probability" if get_task(task).multilabel else "confidence (top class)")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
