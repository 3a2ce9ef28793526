"""How much do fold AUCs scatter by chance alone, with BS-80K's folds? (issue 14's "fold sd <= 0.01")

    python benchmarks/fold_sd_floor.py [--reps 4000]

A recipe whose true ROC-AUC is A, tested on five folds of the sizes `scintix cv`
made over BS-80K's anterior crops (about 439 images, 25-29 abnormal each,
read from p1_cv.json), still gives five different fold AUCs: each fold is a
finite sample of patients. This simulates that sampling alone (no training,
no selection noise): scores from the equal-variance binormal model with
separation d' = sqrt(2) * Phi^-1(A), one draw per fold, the sd of the five fold
AUCs (ddof 1, as the CV table), repeated. Writes benchmarks/results/fold_sd_floor.json.

The binormal model is an assumption (real score distributions are skewed); the
Hanley-McNeil standard error of one fold's AUC is reported beside it as a check.
"""

from __future__ import annotations

import argparse
import json
from statistics import NormalDist

import numpy as np
from _common import RESULTS, write_result

DEFAULT_FOLDS = [(439, 28), (439, 27), (438, 29), (440, 25), (439, 27)]  # (images, abnormal) of the P1 CV folds


def fold_aucs(rng: np.random.Generator, auc: float, folds: list[tuple[int, int]], reps: int) -> np.ndarray:
    """(reps, folds) AUCs of binormal scores with true AUC ``auc`` (rank formula; continuous scores have no ties)."""
    d = np.sqrt(2) * NormalDist().inv_cdf(auc)
    out = np.empty((reps, len(folds)))
    for j, (n, pos) in enumerate(folds):
        neg = n - pos
        s = np.concatenate([rng.normal(d, 1, (reps, pos)), rng.normal(0, 1, (reps, neg))], axis=1)
        ranks = s.argsort(axis=1).argsort(axis=1) + 1
        out[:, j] = (ranks[:, :pos].sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)
    return out


def hanley_mcneil_se(auc: float, pos: int, neg: int) -> float:
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    return float(np.sqrt((auc * (1 - auc) + (pos - 1) * (q1 - auc**2) + (neg - 1) * (q2 - auc**2)) / (pos * neg)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=4000)
    ap.add_argument("--cv", action="append", default=[], help="a finished `scintix cv` folder: bootstrap each fold's own out-of-fold scores (patients resampled) for the sampling sd of its AUC, model-free")
    a = ap.parse_args()
    cv = RESULTS / "p1_cv.json"
    folds = DEFAULT_FOLDS
    if cv.is_file():
        v = json.loads(cv.read_text())["variants"].get("loss_weighted")
        if v:
            folds = [(f["n"], f["positives"]) for f in v["per_fold"]]
    rng = np.random.default_rng(0)
    rows = []
    for auc in (0.95, 0.97, 0.985, 0.99):
        a_f = fold_aucs(rng, auc, folds, a.reps)
        sd = a_f.std(axis=1, ddof=1)
        rows.append({"true_auc": auc, "fold_sd_median": float(np.median(sd)), "fold_sd_90pct_range": [float(x) for x in np.quantile(sd, [0.05, 0.95])],
                     "p_fold_sd_at_most_0.01": float((sd <= 0.01).mean()), "single_fold_auc_sd": float(a_f.std(ddof=1)),
                     "hanley_mcneil_se_one_fold": hanley_mcneil_se(auc, int(np.mean([p for _, p in folds])), int(np.mean([n - p for n, p in folds])))})
        print(f"true AUC {auc}: fold sd median {rows[-1]['fold_sd_median']:.4f}, P(sd <= 0.01) {rows[-1]['p_fold_sd_at_most_0.01']:.3f}, "
              f"one fold's AUC sd {rows[-1]['single_fold_auc_sd']:.4f} (Hanley-McNeil {rows[-1]['hanley_mcneil_se_one_fold']:.4f})")
    empirical = {}
    for folder in a.cv:  # the same question without a score model: resample each fold's own patients
        from scintix.evaluation.bootstrap import bootstrap_ci
        from scintix.training.crossval import oof_predictions

        oof, positive = oof_predictions(folder)
        per = []
        for f in sorted({r["fold"] for r in oof}):
            rows_f = [r for r in oof if r["fold"] == f]
            y = np.array([r["target"] == positive for r in rows_f], float)
            p = np.array([r["prob"] for r in rows_f])
            reps = bootstrap_ci(y, p, [r["patient_id"] for r in rows_f], 0.5, 1000, 0.6827, 0)["roc_auc"]  # +-1 sd range
            per.append({"fold": f, "auc": reps["value"], "bootstrap_sd": (reps["ci_high"] - reps["ci_low"]) / 2})
        empirical[str(folder).rstrip("/").rsplit("/", 1)[-1]] = per
        print(folder, [f"{r['auc']:.3f} +- {r['bootstrap_sd']:.3f}" for r in per])
    write_result("fold_sd_floor", {"folds": [{"n": n, "positives": p} for n, p in folds], "reps": a.reps,
                                   "model": "equal-variance binormal scores, sampling only (no training or selection noise)",
                                   "command": "python benchmarks/fold_sd_floor.py" + "".join(f" --cv {c}" for c in a.cv), "rows": rows,
                                   **({"empirical_fold_bootstrap": empirical} if empirical else {})})


if __name__ == "__main__":
    main()
