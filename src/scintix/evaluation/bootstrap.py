"""Bootstrap confidence intervals resampled by patient (the unit of independence).

Images of one patient are correlated (two views, repeated scans), so resampling
images would understate the uncertainty. Each replicate draws patients with
replacement; an image's weight is how often its patient was drawn. Count
metrics use the weighted confusion counts (vectorised over replicates), the
AUCs use sklearn with ``sample_weight``. Replicates where a metric is undefined
(e.g. no positive patient drawn) are left out of that metric's interval.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .metrics import COUNT_METRICS, binary_metrics, metrics_from_counts, pr_auc, roc_auc

__all__ = ["bootstrap_ci", "bootstrap_ratio_ci", "paired_difference_ci", "paired_auc_difference", "auc_difference_over_runs", "macro_auc_difference_over_runs",
           "mean_difference_over_runs"]


def bootstrap_ci(
    y: np.ndarray,
    score: np.ndarray,
    patient_ids: Sequence[str],
    threshold: float,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Point estimate and percentile CI of every binary metric.

    Returns:
        ``{metric: {"value", "ci_low", "ci_high"}}``; the CI is NaN when fewer
        than half of the replicates define the metric.
    """
    y = np.asarray(y).astype(int)
    score = np.asarray(score, dtype=float)
    point = binary_metrics(y, score, threshold)
    _, pid_index = np.unique(np.asarray(patient_ids, dtype=str), return_inverse=True)
    n_pat = int(pid_index.max()) + 1 if len(pid_index) else 0
    pred = score >= threshold
    # Per-patient confusion counts, so a replicate's counts are one matrix product.
    per_patient = np.zeros((n_pat, 4))
    cells = np.stack([y & pred, (1 - y) & pred, y & ~pred, (1 - y) & ~pred], axis=1).astype(float)
    np.add.at(per_patient, pid_index, cells)
    rng = np.random.default_rng(seed)
    weights = rng.multinomial(n_pat, np.full(n_pat, 1.0 / n_pat), size=n_boot).astype(float) if n_pat else np.zeros((n_boot, 0))
    boot = metrics_from_counts(weights @ per_patient)
    img_w = weights[:, pid_index]
    boot["roc_auc"] = np.array([roc_auc(y, score, w) for w in img_w])
    boot["pr_auc"] = np.array([pr_auc(y, score, w) for w in img_w])
    alpha = (1 - level) / 2
    out = {}
    for name in (*COUNT_METRICS, "roc_auc", "pr_auc"):
        vals = boot[name][np.isfinite(boot[name])]
        if len(vals) >= n_boot / 2:
            lo, hi = np.quantile(vals, [alpha, 1 - alpha])
        else:
            lo = hi = float("nan")
        out[name] = {"value": point[name], "ci_low": float(lo), "ci_high": float(hi)}
    return out


def bootstrap_ratio_ci(
    numerator: np.ndarray,
    denominator: np.ndarray,
    patient_ids: Sequence[str],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """``sum(numerator) / sum(denominator)`` over images, with a patient-level percentile CI.

    A mean over the images where a value is defined is the ratio of
    ``value`` (0 where undefined) to ``defined`` (0/1); lesion sensitivity is
    detected / true lesions. Each replicate weighs an image by how often its
    patient was drawn. NaN value (and CI) when the denominator is 0.
    """
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    total = den.sum()
    value = float(num.sum() / total) if total > 0 else float("nan")
    _, pid_index = np.unique(np.asarray(patient_ids, dtype=str), return_inverse=True)
    n_pat = int(pid_index.max()) + 1 if len(pid_index) else 0
    if n_pat == 0 or not np.isfinite(value):
        return {"value": value, "ci_low": float("nan"), "ci_high": float("nan")}
    per_num = np.bincount(pid_index, weights=num, minlength=n_pat)
    per_den = np.bincount(pid_index, weights=den, minlength=n_pat)
    w = np.random.default_rng(seed).multinomial(n_pat, np.full(n_pat, 1.0 / n_pat), size=n_boot).astype(float)
    b_num, b_den = w @ per_num, w @ per_den
    ok = b_den > 0
    if ok.sum() < n_boot / 2:
        return {"value": value, "ci_low": float("nan"), "ci_high": float("nan")}
    alpha = (1 - level) / 2
    lo, hi = np.quantile(b_num[ok] / b_den[ok], [alpha, 1 - alpha])
    return {"value": value, "ci_low": float(lo), "ci_high": float(hi)}


def paired_difference_ci(
    a: np.ndarray,
    b: np.ndarray,
    patient_ids: Sequence[str],
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, float]:
    """``mean(a) - mean(b)`` over the images where both are defined (paired: same images), with a patient-level CI.

    For two models (or two inputs) scored on the same images, e.g. per-image
    Dice with and without the report. Each replicate draws patients with
    replacement and weighs their images by how often they were drawn.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    ok = np.isfinite(a) & np.isfinite(b)
    diff = np.where(ok, a - b, 0.0)
    out = bootstrap_ratio_ci(diff, ok.astype(float), patient_ids, n_boot, level, seed)
    return {**out, "n": int(ok.sum())}


def _image_weights(patient_ids, n_boot: int, seed: int) -> np.ndarray:
    """Per replicate, each image's weight: how often its patient was drawn (patients with replacement)."""
    _, index = np.unique(np.asarray(patient_ids, dtype=str), return_inverse=True)
    n_pat = int(index.max()) + 1
    return np.random.default_rng(seed).multinomial(n_pat, np.full(n_pat, 1.0 / n_pat), size=n_boot).astype(float)[:, index]


def paired_auc_difference(y, pa, pb, patient_ids, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """AUC(a) - AUC(b) on the same predictions' patients, each replicate resampling patients once for both."""
    y, pa, pb = (np.asarray(v, float) for v in (y, pa, pb))
    weights = _image_weights(patient_ids, n_boot, seed)
    reps = np.array([roc_auc(y, pa, w) - roc_auc(y, pb, w) for w in weights])
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2]) if len(reps) else (float("nan"), float("nan"))
    return {"value": roc_auc(y, pa) - roc_auc(y, pb), "ci_low": float(lo), "ci_high": float(hi), "share_a_better": float(np.mean(reps > 0)) if len(reps) else float("nan")}


def auc_difference_over_runs(y, runs_a, runs_b, patient_ids, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Mean AUC of recipe A's runs - mean AUC of recipe B's runs (each run: one training seed's scores of the same images).

    One run per recipe measures one draw of the training (initialisation, batch
    order, augmentation): repeated with another seed, the same recipe on the
    same patients moves its AUC by ~0.01-0.03 on small positive counts, and a
    patient-level CI does not contain that. Here each replicate draws the
    patients once for all runs (paired by image) and draws each recipe's runs
    with replacement (a two-level bootstrap: patients and training seeds), so
    the interval holds both. With as many runs on each side, the runs at one
    position are drawn together (paired by seed: give them in the same seed
    order; two recipes started from one seed share their initialisation and
    batch order, and pairing takes that out of the difference; for unrelated
    runs it costs nothing); otherwise each side's runs are drawn on their own.
    With one run per recipe it is exactly :func:`paired_auc_difference` (same
    patient draws). With few runs
    the seed level is itself uncertain (resampling 3 runs gives 2/3 of their
    variance): the per-run AUCs are returned so their spread can be read directly.
    """
    return macro_auc_difference_over_runs([y], [runs_a], [runs_b], patient_ids, n_boot, level, seed)


def macro_auc_difference_over_runs(ys, runs_a, runs_b, patient_ids, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """:func:`auc_difference_over_runs` of the unweighted mean over classes (multi-class one-vs-rest, multi-label).

    ``ys[c]`` is class ``c``'s 0/1 truth, ``runs_a[c]`` / ``runs_b[c]`` each
    recipe's runs' scores for it (the same runs, in the same order, for every
    class). Each replicate draws patients and runs once for all classes, so the
    CI holds that the classes share images and models. One class: exactly
    :func:`auc_difference_over_runs`.
    """
    ys = [np.asarray(y, float) for y in ys]
    runs_a = [[np.asarray(r, float) for r in side] for side in runs_a]
    runs_b = [[np.asarray(r, float) for r in side] for side in runs_b]
    if not ys or len(runs_a) != len(ys) or len(runs_b) != len(ys):
        raise ValueError("macro_auc_difference_over_runs needs, for every class, its truth and each recipe's runs")
    k_a, k_b = len(runs_a[0]), len(runs_b[0])
    if not k_a or not k_b or any(len(r) != k_a for r in runs_a) or any(len(r) != k_b for r in runs_b):
        raise ValueError("auc_difference_over_runs needs at least one run per recipe, the same runs for every class")
    weights = _image_weights(patient_ids, n_boot, seed)
    pick = np.random.default_rng([seed, 1])  # the seed level's own stream: the patient draws stay those of paired_auc_difference

    paired = k_a == k_b
    ca = _run_counts(pick, k_a, n_boot)
    cb = ca if paired else _run_counts(pick, k_b, n_boot)
    reps = np.empty(n_boot)
    for i, w in enumerate(weights):
        auc_a = np.array([[roc_auc(y, r, w) for r in side] for y, side in zip(ys, runs_a)])  # classes x runs
        auc_b = np.array([[roc_auc(y, r, w) for r in side] for y, side in zip(ys, runs_b)])
        reps[i] = np.mean(auc_a @ ca[i] / ca[i].sum() - auc_b @ cb[i] / cb[i].sum())
    reps = reps[np.isfinite(reps)]
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2]) if len(reps) else (float("nan"), float("nan"))
    auc_a = [float(np.mean([roc_auc(y, side[j]) for y, side in zip(ys, runs_a)])) for j in range(k_a)]  # each run's (macro) AUC
    auc_b = [float(np.mean([roc_auc(y, side[j]) for y, side in zip(ys, runs_b)])) for j in range(k_b)]
    how = "the runs, paired by position" if paired else "each recipe's runs on their own"
    return {"value": float(np.mean(auc_a) - np.mean(auc_b)), "ci_low": float(lo), "ci_high": float(hi),
            "share_a_better": float(np.mean(reps > 0)) if len(reps) else float("nan"),
            "runs_auc_a": auc_a, "runs_auc_b": auc_b, "runs_paired": paired,
            "runs_sd_a": float(np.std(auc_a, ddof=1)) if len(auc_a) > 1 else None,
            "runs_sd_b": float(np.std(auc_b, ddof=1)) if len(auc_b) > 1 else None,
            "ci": f"{level:.0%} two-level bootstrap (patients, then {how}), {n_boot} replicates"}


def _run_counts(rng: np.random.Generator, k: int, n_boot: int) -> np.ndarray:
    """How often each of k runs is drawn in each replicate (k = 1: always once)."""
    return np.ones((n_boot, 1)) if k == 1 else np.stack([np.bincount(rng.integers(0, k, k), minlength=k) for _ in range(n_boot)]).astype(float)


def mean_difference_over_runs(runs_a, runs_b, patient_ids, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """:func:`paired_difference_ci` when each recipe has several runs (training seeds) scoring the same images.

    Per image, each recipe's value is the mean over its runs (e.g. per-scan
    Dice); the point estimate is the mean over images where both are defined of
    A minus B. The CI is the two-level bootstrap of
    :func:`auc_difference_over_runs`: each replicate draws patients once for
    both recipes, and draws runs with replacement (the runs at one position
    together when both sides have as many: give them in the same seed order),
    so the training noise between seeds is inside the interval, not only the
    patient sampling. With one run per recipe it is exactly
    :func:`paired_difference_ci` (same patient draws).
    """
    runs_a = np.array([np.asarray(r, float) for r in runs_a])
    runs_b = np.array([np.asarray(r, float) for r in runs_b])
    if runs_a.ndim != 2 or runs_b.ndim != 2 or not len(runs_a) or not len(runs_b) or runs_a.shape[1] != runs_b.shape[1] or runs_a.shape[1] != len(patient_ids):
        raise ValueError("mean_difference_over_runs needs at least one run per recipe, each scoring the same images as the patient ids")
    k_a, k_b = len(runs_a), len(runs_b)
    weights = _image_weights(patient_ids, n_boot, seed)
    pick = np.random.default_rng([seed, 1])  # the seed level's own stream: the patient draws stay those of paired_difference_ci
    paired = k_a == k_b
    ca = _run_counts(pick, k_a, n_boot)
    cb = ca if paired else _run_counts(pick, k_b, n_boot)

    def run_mean(runs: np.ndarray, counts: np.ndarray) -> np.ndarray:  # each image's mean over the runs drawn (NaN: no drawn run defines it)
        ok = np.isfinite(runs)
        num = counts @ np.where(ok, runs, 0.0)
        den = counts @ ok.astype(float)
        return np.where(den > 0, num / np.maximum(den, 1e-12), np.nan)

    reps = np.empty(n_boot)
    for i, w in enumerate(weights):
        d = run_mean(runs_a, ca[i : i + 1])[0] - run_mean(runs_b, cb[i : i + 1])[0]
        ok = np.isfinite(d) & (w > 0)
        reps[i] = np.sum(w[ok] * d[ok]) / np.sum(w[ok]) if ok.any() else np.nan
    reps = reps[np.isfinite(reps)]
    point = run_mean(runs_a, np.ones((1, k_a)))[0] - run_mean(runs_b, np.ones((1, k_b)))[0]
    defined = np.isfinite(point)
    value = float(np.mean(point[defined])) if defined.any() else float("nan")
    lo, hi = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2]) if len(reps) >= n_boot / 2 else (float("nan"), float("nan"))
    how = "the runs, paired by position" if paired else "each recipe's runs on their own"
    return {"value": value, "ci_low": float(lo), "ci_high": float(hi), "n": int(defined.sum()),
            "share_a_better": float(np.mean(reps > 0)) if len(reps) else float("nan"), "runs_paired": paired,
            "ci": f"{level:.0%} two-level bootstrap (patients, then {how}), {n_boot} replicates"}
