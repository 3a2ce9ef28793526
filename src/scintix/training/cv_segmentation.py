"""Cross-validation of a segmenter (nnU-Net's way of comparing recipes): pooled out-of-fold Dice and paired differences.

Each fold's run cuts its out-of-fold scans at the threshold it chose on its own
inner validation split and writes their per-image metrics
(``eval/test/per_image.csv``). Pooled over the folds, every scan is scored once
by a model that never saw its patient: mean Dice over the scans with a lesion,
pooled (global) Dice, lesion sensitivity and the false-positive rate on
lesion-free scans, each with a patient-level CI; two recipes cross-validated on
the same folds compare paired, scan by scan (:func:`compare_segmentation_cv`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..evaluation.bootstrap import (
    bootstrap_ratio_ci,
    mean_difference_over_runs,
    paired_difference_ci,
)
from .oof import cv_task, fold_dirs, fold_sd, image_keys, oof_segmentation

__all__ = ["summarize_segmentation_cv", "compare_segmentation_cv", "export_segmentation_oof", "is_segmentation_source", "format_segmentation_summary", "format_segmentation_comparison"]


def _mean_of(v: np.ndarray, pids, ci: dict) -> dict:
    """Mean over the images where ``v`` is defined, with a patient-level CI."""
    ok = np.isfinite(v)
    return bootstrap_ratio_ci(np.where(ok, v, 0.0), ok.astype(float), pids, **ci)


def _value(m: dict) -> float:
    """A metric's value as metrics.json stores it (``null`` where undefined, e.g. Dice of a split without lesions)."""
    return float("nan") if m.get("value") is None else float(m["value"])


def _nanmean(values) -> float:
    values = np.asarray(values, float)
    return float(np.mean(values[np.isfinite(values)])) if np.isfinite(values).any() else float("nan")


def summarize_segmentation_cv(out_dir: str | Path, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> tuple[list[dict], dict]:
    """The out-of-fold per-image rows and the summary (per foreground class) of a segmentation CV's fold runs."""
    out_dir = Path(out_dir)
    rows = oof_segmentation(out_dir)
    if not rows:
        raise ValueError(f"{out_dir}: the fold runs scored no out-of-fold image")
    classes = list(dict.fromkeys(r["class"] for r in rows))
    ci = dict(n_boot=n_boot, level=level, seed=seed)
    per_class = {}
    for c in classes:
        r = [x for x in rows if x["class"] == c]
        pids = [x["patient_id"] for x in r]
        col = {k: np.array([x[k] for x in r], float) for k in ("dice", "truth_pixels", "pred_pixels", "true_lesions", "detected_lesions", "false_positive_scan")}
        lesion = col["truth_pixels"] > 0
        tp = np.where(lesion, np.nan_to_num(col["dice"]) * (col["truth_pixels"] + col["pred_pixels"]) / 2, 0.0)  # Dice = 2tp / (truth + pred)
        per_class[c] = {"images_with_lesion": int(lesion.sum()), "lesion_free_images": int((~lesion).sum()),
                        "dice": _mean_of(col["dice"], pids, ci),
                        "global_dice": bootstrap_ratio_ci(2 * tp, col["truth_pixels"] + col["pred_pixels"], pids, **ci),
                        "lesion_sensitivity": bootstrap_ratio_ci(col["detected_lesions"], col["true_lesions"], pids, **ci),
                        "false_positive_scan_rate": _mean_of(col["false_positive_scan"], pids, ci)}
    per_fold = []
    for d in fold_dirs(out_dir):
        m = json.loads((d / "eval" / "test" / "metrics.json").read_text())
        per_fold.append({"fold": int(d.name[4:]), "n": m["n"], "patients": m["patients"], "thresholds": m.get("thresholds"),
                         "dice": {c: _value(m["per_class"][c]["dice"]) for c in classes if c in m["per_class"]}})
    fold_dice = [_nanmean(list(f["dice"].values())) for f in per_fold]  # a fold without a lesion scan has no Dice
    pids = [r["patient_id"] for r in rows]
    conditions = _pooled_conditions(out_dir, ci)
    return rows, {
        "task": "segmentation", "folds": len(per_fold), "n": len({r["path"] for r in rows}), "patients": len(set(pids)), "classes": classes,
        "per_fold": per_fold, "fold_dice_mean": _nanmean(fold_dice), "fold_dice_sd": fold_sd(fold_dice),
        "per_class": per_class, **({"text_conditions": conditions} if conditions else {}),
        "ci": f"{level:.0%} patient-level bootstrap, {n_boot} replicates",
        "protocol": "patient-grouped stratified k-fold; each fold's run selects its checkpoint and threshold on an inner grouped validation split "
                    "of the other folds; Dice: mean over the scans with a lesion; fold Dice: the mean over classes of each fold's",
    }


def _pooled_conditions(out_dir: Path, ci: dict) -> dict | None:
    """A report-guided segmenter's out-of-fold Dice with its own report, none and another patient's (each fold's
    ``text_conditions.csv``), pooled: each condition's mean over the scans with a lesion, and the paired differences."""
    tables = [d / "eval" / "test" / "text_conditions.csv" for d in fold_dirs(out_dir)]
    if not all(t.is_file() for t in tables):
        return None
    rows = [r for t in tables for r in csv.DictReader(open(t, newline="", encoding="utf-8"))]
    names = [k[5:] for k in rows[0] if k.startswith("dice_")] if rows else []
    if "report" not in names:
        return None
    pids = [r["patient_id"] for r in rows]
    dice = {k: np.array([float(r[f"dice_{k}"]) if r[f"dice_{k}"] != "" else np.nan for r in rows]) for k in names}
    return {"scans": len(rows), "dice": {k: _mean_of(v, pids, ci) for k, v in dice.items()},
            "differences": {f"report - {k}": paired_difference_ci(dice["report"], dice[k], pids, ci["n_boot"], ci["level"], ci["seed"]) for k in names if k != "report"}}


SEG_EXPORT_FIELDS = ["fold", "key", "class", "dice"]


def export_segmentation_oof(cv_dir: str | Path, file: str | Path) -> Path:
    """A segmentation CV's out-of-fold Dice without its data, for :func:`compare_segmentation_cv` once the fold runs are gone:
    ``fold, key, class, dice`` for each scan (and foreground class) with a lesion, the key a hash of the scan's path
    (:func:`~scintix.training.oof.image_keys`). No file names, patients or masks; the rows do say which (hashed)
    scans have a lesion, as any per-scan Dice does."""
    rows = oof_segmentation(cv_dir)
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    keyed = sorted(((r["fold"], k, r["class"], r["dice"]) for r, k in zip(rows, image_keys([r["path"] for r in rows])) if r["truth_pixels"] > 0))
    with open(file, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(SEG_EXPORT_FIELDS)
        w.writerows([f, k, c, f"{d:.6f}"] for f, k, c, d in keyed)
    return file


def is_segmentation_source(source: str | Path) -> bool:
    """A segmentation CV folder, or a file :func:`export_segmentation_oof` wrote."""
    source = Path(source)
    if source.is_dir():
        return cv_task(source) == "segmentation"
    with open(source, newline="", encoding="utf-8") as fh:
        return next(csv.reader(fh), None) == SEG_EXPORT_FIELDS


def _per_scan(source: Path) -> tuple[dict[tuple[str, str], dict], bool]:
    """``{(key, class): row}`` and whether the source is a CV folder; an exported file holds the scans with a lesion only."""
    if not source.is_dir():
        with open(source, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames != SEG_EXPORT_FIELDS:
                raise ValueError(f"{source}: not a segmentation CV folder nor its exported per-scan Dice ({', '.join(SEG_EXPORT_FIELDS)})")
            return {(r["key"], r["class"]): {"fold": int(r["fold"]), "dice": float(r["dice"])} for r in reader}, False
    if (task := cv_task(source)) != "segmentation":
        raise ValueError(f"{source}: a {task} CV; the other side is a segmentation CV (a paired comparison needs the same task)")
    rows = oof_segmentation(source)
    return {(k, r["class"]): r for k, r in zip(image_keys([r["path"] for r in rows]), rows)}, True


def compare_segmentation_cv(sides: list[list[Path]], n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Recipe A minus recipe B, two segmentation CVs (or lists of them, one per training seed) on the same folds.

    Per class: per-scan Dice paired on the scans with a lesion (each side's
    seeds averaged scan by scan), its CI (patient-level; with several seeds a
    side, the two-level bootstrap that also resamples the seeds, so training
    noise is inside it; each seed's own Dice in ``runs_dice_a`` /
    ``runs_dice_b``), and the per-fold differences of mean Dice.
    """
    read = [[_per_scan(Path(x)) for x in side] for side in sides]
    folders = [(rows, x) for side, srcs in zip(read, sides) for (rows, is_dir), x in zip(side, srcs) if is_dir]
    if not folders:
        raise ValueError(f"{sides[0][0]}, {sides[1][0]}: at least one side must be a CV folder (exported files hold no patients)")
    ref, ref_src = folders[0]
    lesion_keys = {k for k, r in ref.items() if r["truth_pixels"] > 0}
    for side, srcs in zip(read, sides):
        for (rows, is_dir), x in zip(side, srcs):
            same = set(rows) == set(ref) if is_dir else set(rows) == lesion_keys
            if not same or any(rows[k]["fold"] != ref[k]["fold"] for k in rows):
                raise ValueError(f"{x} and {ref_src} were not cross-validated on the same images, classes and folds: a paired comparison needs both")
    nan = {"dice": float("nan")}
    loaded = [[rows if is_dir else {k: rows.get(k, nan) for k in ref} for rows, is_dir in side] for side in read]  # a file's lesion-free scans: no Dice
    classes = list(dict.fromkeys(c for _, c in ref))
    per_class = {}
    for c in classes:
        keys = sorted(k for k in ref if k[1] == c)
        pids = [ref[k]["patient_id"] for k in keys]
        folds = np.array([ref[k]["fold"] for k in keys])
        runs = [[np.array([rows[k]["dice"] for k in keys]) for rows in side] for side in loaded]
        a, b = (_scan_mean(side) for side in runs)
        lesion = np.isfinite(a) & np.isfinite(b)
        if not lesion.any():  # no scan of this class has a lesion: no Dice to compare
            continue
        per_fold = [float(np.mean(a[lesion & (folds == f)]) - np.mean(b[lesion & (folds == f)])) for f in sorted(set(folds)) if (lesion & (folds == f)).any()]
        per_class[c] = {"images_with_lesion": int(lesion.sum()), "dice_a": float(np.mean(a[lesion])), "dice_b": float(np.mean(b[lesion])),
                        "dice_difference": mean_difference_over_runs(runs[0], runs[1], pids, n_boot, level, seed),
                        "per_fold_difference": per_fold, "per_fold_difference_mean": _nanmean(per_fold),
                        "per_fold_difference_sd": fold_sd(per_fold),
                        **({"runs_dice_a": [float(np.nanmean(r)) for r in runs[0]], "runs_dice_b": [float(np.nanmean(r)) for r in runs[1]]}
                           if len(runs[0]) > 1 or len(runs[1]) > 1 else {})}
    names = [[str(x) for x in side] for side in sides]
    out = {"a": names[0] if len(names[0]) > 1 else names[0][0], "b": names[1] if len(names[1]) > 1 else names[1][0], "task": "segmentation",
           "n": len({k for k, _ in ref}), "patients": len({r["patient_id"] for r in ref.values()}), "classes": list(per_class), "per_class": per_class,
           "classes_without_lesion": [c for c in classes if c not in per_class]}
    if len(sides[0]) > 1 or len(sides[1]) > 1:
        out["runs_a"], out["runs_b"] = len(sides[0]), len(sides[1])
    return out


def _scan_mean(runs: list[np.ndarray]) -> np.ndarray:
    """Each scan's Dice averaged over a recipe's runs (NaN where no run defines it: a lesion-free scan)."""
    arr = np.array(runs)
    n = np.isfinite(arr).sum(0)
    return np.where(n > 0, np.nansum(arr, 0) / np.maximum(n, 1), np.nan)


def _f(m: dict) -> str:
    return f"{m['value']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"


def format_segmentation_summary(s: dict) -> list[str]:
    lines = [f"{s['folds']}-fold cross-validation (segmentation): {s['n']} images, {s['patients']} patients"]
    for r in s["per_fold"]:
        lines.append(f"  fold {r['fold']}: Dice " + ", ".join(f"{c} {v:.4f}" for c, v in r["dice"].items()) + f"  ({r['n']} images)")
    lines.append(f"fold Dice mean {s['fold_dice_mean']:.4f} +- {s['fold_dice_sd']:.4f} (sd)")
    for c, v in s["per_class"].items():
        lines.append(f"{c}: pooled out-of-fold Dice {_f(v['dice'])} over {v['images_with_lesion']} scans with a lesion; pooled (global) Dice {_f(v['global_dice'])}; "
                     f"lesion sensitivity {_f(v['lesion_sensitivity'])}; false-positive scan rate {_f(v['false_positive_scan_rate'])} "
                     f"({v['lesion_free_images']} lesion-free)")
    if (tc := s.get("text_conditions")):
        lines.append("pooled out-of-fold Dice by report: " + ", ".join(f"{k.replace('_', ' ')} {_f(v)}" for k, v in tc["dice"].items()))
        lines.append("  paired: " + "; ".join(f"{k.replace('_', ' ')} {_f(v)}" for k, v in tc["differences"].items()))
    lines.append("(each fold's scans cut at its own validation threshold; CIs: patient sampling, one training seed)")
    return lines


def format_segmentation_comparison(res: dict) -> list[str]:
    seeds = f" (seeds averaged scan by scan: {res['runs_a']} vs {res['runs_b']}; the CI resamples patients and seeds)" if "runs_a" in res else ""
    lines = [f"{res['n']} images, {res['patients']} patients; per-scan Dice on the scans with a lesion, paired{seeds}"]
    for c, r in res["per_class"].items():
        lines.append(f"{c} ({r['images_with_lesion']} scans with a lesion): A {r['dice_a']:.4f}, B {r['dice_b']:.4f}")
        lines.append(f"  A - B: {_f(r['dice_difference'])} (patient-level bootstrap); per fold {r['per_fold_difference_mean']:+.4f} +- {r['per_fold_difference_sd']:.4f}")
        if "runs_dice_a" in r:
            lines.append("  per seed: A " + ", ".join(f"{v:.4f}" for v in r["runs_dice_a"]) + "; B " + ", ".join(f"{v:.4f}" for v in r["runs_dice_b"]))
    return lines
