"""Comparing and combining cross-validations by their out-of-fold predictions: paired recipe differences, seed
ensembles, two-view fusion, and predictions kept without their data.

Two CVs made on the same folds (``data.split.seed``) hold a prediction for
every image from a model that never saw its patient: recipe A minus recipe B is
then paired by image, its CI resampling patients (:func:`compare_cv`), and over
several training seeds per recipe the seeds too. Binary CVs compare the
positive class's pooled AUC; multi-class (one-vs-rest) and multi-label CVs
compare each class's, and their unweighted mean (the macro difference, whose CI
draws patients and seeds once for all classes).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..evaluation.bootstrap import (
    auc_difference_over_runs,
    bootstrap_ci,
    macro_auc_difference_over_runs,
    paired_auc_difference,
)
from ..evaluation.metrics import roc_auc
from .cv_segmentation import (
    compare_segmentation_cv,
    export_segmentation_oof,
    format_segmentation_comparison,
    is_segmentation_source,
)
from .oof import binary_oof, cv_task, fold_sd, image_keys, oof_predictions, seed_dirs

__all__ = ["compare_cv", "format_comparison", "format_ensemble_comparison", "seed_ensemble_auc", "export_oof", "fuse_views", "image_keys", "pooled_auc_ci"]


def pooled_auc_ci(y, p, patient_ids, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """ROC-AUC of pooled predictions with a percentile CI from resampling patients (:func:`~scintix.evaluation.bootstrap.bootstrap_ci`)."""
    return bootstrap_ci(y, p, patient_ids, 0.5, n_boot, level, seed)["roc_auc"]


def _folder_rows(out_dir) -> tuple[list[dict], list[str], bool]:
    """A CV folder's out-of-fold rows with ``probs`` per class, its classes, and whether it is binary."""
    rows, positive = oof_predictions(out_dir)
    if positive:
        return [{**r, "probs": {positive: r["prob"]}} for r in rows], [positive], True
    classes = [k[5:] for k in rows[0] if k.startswith("prob_")] if rows else []
    return [{**r, "probs": {c: r[f"prob_{c}"] for c in classes}} for r in rows], classes, False


def export_oof(cv_dir: str | Path, file: str | Path) -> Path:
    """A CV's out-of-fold probabilities without its data: ``fold, key, prob_<class>...`` per image (:func:`image_keys`;
    the positive class's for a binary CV, every class's otherwise), for :func:`compare_cv` later. A segmentation CV's
    per-scan Dice instead (:func:`~scintix.training.cv_segmentation.export_segmentation_oof`)."""
    if cv_task(cv_dir) == "segmentation":
        return export_segmentation_oof(cv_dir, file)
    rows, classes, _ = _folder_rows(cv_dir)
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["fold", "key", *(f"prob_{c}" for c in classes)])
        for r, k in sorted(zip(rows, image_keys([r["path"] for r in rows])), key=lambda t: (t[0]["fold"], t[1])):
            w.writerow([r["fold"], k, *(f"{r['probs'][c]:.6f}" for c in classes)])
    return file


def _oof_by_key(source: Path) -> tuple[dict[str, dict], list[str], bool, bool]:
    """``{key: row}`` from a CV folder (rows carry target and patient) or from an :func:`export_oof` file (they do not);
    its classes; whether it is binary; whether it is a folder."""
    if source.is_dir():
        rows, classes, binary = _folder_rows(source)
        return dict(zip(image_keys([r["path"] for r in rows]), rows)), classes, binary, True
    with open(source, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        prob = [f for f in reader.fieldnames or [] if f.startswith("prob_")]
        if not {"fold", "key"} <= set(reader.fieldnames or []) or not prob:
            raise ValueError(f"{source}: not a CV folder nor an exported out-of-fold file (fold, key, prob_<class>...)")
        rows = {r["key"]: {"fold": int(r["fold"]), "probs": {f[5:]: float(r[f]) for f in prob}} for r in reader}
    return rows, [f[5:] for f in prob], len(prob) == 1, False


def _aligned_oof(sides: list[list[Path]], what: str, truth: dict[str, dict] | None = None):
    """The same images in the same order from every source (paired): truth per class, patients, folds, and each
    source's probabilities per class (``runs[side][source][class]``), with the classes and whether they are binary.

    ``sides`` groups the sources (e.g. two recipes' seeds); at least one must be a CV folder (labels, patients),
    or ``truth`` (:func:`~scintix.training.cv_truth.cv_truth`: the CV's folds, targets and patients rebuilt from
    its data) is given; all must hold the same images, folds and classes.
    """
    loaded = [[_oof_by_key(Path(x)) for x in side] for side in sides]
    folder = next(((t, x) for side, srcs in zip(loaded, sides) for t, x in zip(side, srcs) if t[3]), None)
    if folder is None and truth is None:
        raise ValueError(f"{what}: at least one side must be a CV folder (the exported files hold no labels), "
                         "or the data they were cross-validated on must be given (--data, --recipe)")
    if folder is not None:
        (ref, classes, binary, _), ref_src = folder
    else:  # kept files alone: scored against the rebuilt truth, which must name the files' classes
        ref, ref_src = truth, "the data's rebuilt folds"
        _, classes, binary, _ = loaded[0][0]
        named = {c for r in truth.values() for c in (r["target"].split(";") if not binary else [r["target"]])}
        if not set(classes) <= named:
            raise ValueError(f"{sides[0][0]}: class(es) {', '.join(sorted(set(classes) - named))} are not among the data's targets; other data")
    for side, srcs in zip(loaded, sides):
        for (rows, c, b, _), x in zip(side, srcs):
            if c != classes or b != binary:
                raise ValueError(f"{x} and {ref_src} name different classes ({', '.join(c)} vs {', '.join(classes)})")
            if set(rows) != set(ref) or any(rows[k]["fold"] != ref[k]["fold"] for k in ref):
                raise ValueError(f"{x} and {ref_src} were not cross-validated on the same images and folds: a paired comparison needs both")
    keys = sorted(ref)
    ys = {c: np.array([(ref[k]["target"] == c) if binary else (c in ref[k]["target"].split(";")) for k in keys], float) for c in classes}
    runs = [[{c: np.array([rows[k]["probs"][c] for k in keys]) for c in classes} for rows, _, _, _ in side] for side in loaded]
    return ys, [ref[k]["patient_id"] for k in keys], np.array([ref[k]["fold"] for k in keys]), runs, binary


def _scored(ys: dict[str, np.ndarray]) -> list[str]:
    """The classes an AUC can be computed for (both positives and negatives among the images)."""
    return [c for c, y in ys.items() if 0 < y.sum() < len(y)]


def _sources(x) -> list[Path]:
    """One source or a list of them (a recipe's seeds), each a CV folder, a cross_validate_seeds folder or a kept file."""
    return [d for y in ([x] if isinstance(x, (str, Path)) else x) for d in seed_dirs(y)]


def seed_ensemble_auc(sources, n_boot: int = 1000, level: float = 0.95, seed: int = 0, against=None, truth: dict[str, dict] | None = None) -> dict:
    """Pooled out-of-fold AUC of the mean of several seeds' probabilities per image (patient-level CI).

    Each seed's fold-``f`` model never saw fold ``f``, so neither does their
    mean: an honest out-of-fold estimate for "the recipe, trained with these
    seeds and averaged" (k times the training), beside each seed alone. The
    sources may also be different recipes' CVs on the same folds (an ensemble
    of recipes). Multi-class and multi-label: each class's (``per_class``) and
    their mean (``value``, no CI, as the CV summary's macro mean).

    ``against`` (a CV folder or exported file on the same folds, or a list
    of them, averaged per image the same way): also the ensemble's AUC minus
    that one's, paired by image, patient-level CI (``minus_against``, with
    ``auc_against``; per class and their mean otherwise).

    ``truth``: when every source is a kept file (:func:`~scintix.training.cv_truth.cv_truth`).
    """
    srcs, others = _sources(sources), _sources(against) if against is not None else []
    if any(is_segmentation_source(x) for x in [*srcs, *others]):
        raise ValueError(f"{', '.join(map(str, [*srcs, *others]))}: an ensemble averages probabilities; segmentation CVs are compared scan by scan "
                         "without it (their Dice is per model)")
    ys, pids, _, runs, binary = _aligned_oof([srcs, *([others] if others else [])], ", ".join(map(str, [*srcs, *others])), truth)
    classes = list(ys) if binary else _scored(ys)
    mean = [{c: np.mean([r[c] for r in side], axis=0) for c in ys} for side in runs]  # each side's members averaged per image
    per_class = {c: pooled_auc_ci(ys[c], mean[0][c], pids, n_boot, level, seed) for c in classes}
    out = {"seeds": len(srcs), **per_class[classes[0]]} if binary else {
        "seeds": len(srcs), "value": float(np.mean([v["value"] for v in per_class.values()])), "per_class": per_class}
    if others:
        diff = {c: {**paired_auc_difference(ys[c], mean[0][c], mean[1][c], pids, n_boot, level, seed), "auc_against": roc_auc(ys[c], mean[1][c])}
                for c in classes}
        out["minus_against"] = {"against": str(others[0]) if len(others) == 1 else [str(x) for x in others], "members_against": len(others),
                                **(diff[classes[0]] if binary else {"value": float(np.mean([d["value"] for d in diff.values()])),
                                                                    "auc_against": float(np.mean([d["auc_against"] for d in diff.values()])), "per_class": diff})}
    return out


def format_ensemble_comparison(res: dict) -> list[str]:
    """:func:`seed_ensemble_auc`'s result with ``against`` as the lines ``scintix cv --compare A B --ensemble`` prints."""
    d = res["minus_against"]
    what = "pooled out-of-fold ROC-AUC" if "per_class" not in res else "macro mean of the classes' pooled out-of-fold ROC-AUCs"
    out = [f"{what}, each side's CVs averaged per image (an ensemble, still out of fold): A ({res['seeds']}) {res['value']:.4f}, "
           f"B ({d['members_against']}) {d['auc_against']:.4f}",
           f"  A - B: {d['value']:+.4f}" + (f" [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] (paired, patient-level bootstrap)" if "ci_low" in d else " (no CI for the macro mean)")]
    for c, r in d.get("per_class", {}).items():
        out.append(f"  {c}: A - B {r['value']:+.4f} [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}]")
    return out


def _difference(ys, pids, folds, runs, classes, n_boot, level, seed) -> dict:
    """A minus B over ``classes`` (one: that class; several: their unweighted mean): pooled AUCs, the difference and per-fold differences."""
    a, b = runs

    def auc(y, p):
        return roc_auc(y, p) if 0 < y.sum() < len(y) else float("nan")

    def fold_auc(side, f):  # a recipe's mean over classes of its runs' mean AUC on fold f
        m = folds == f
        return float(np.nanmean([np.mean([auc(ys[c][m], r[c][m]) for r in side]) for c in classes]))

    per_fold = [fold_auc(a, f) - fold_auc(b, f) for f in sorted(set(folds))]
    out = {"pooled_auc_a": float(np.mean([np.mean([roc_auc(ys[c], r[c]) for c in classes]) for r in a])),
           "pooled_auc_b": float(np.mean([np.mean([roc_auc(ys[c], r[c]) for c in classes]) for r in b])),
           "per_fold_difference": per_fold, "per_fold_difference_mean": float(np.nanmean(per_fold)),
           "per_fold_difference_sd": fold_sd(per_fold)}
    if len(classes) == 1 and len(a) == len(b) == 1:
        out["pooled_auc_difference"] = paired_auc_difference(ys[classes[0]], a[0][classes[0]], b[0][classes[0]], pids, n_boot, level, seed)
    elif len(classes) == 1:
        c = classes[0]
        out["pooled_auc_difference"] = auc_difference_over_runs(ys[c], [r[c] for r in a], [r[c] for r in b], pids, n_boot, level, seed)
    else:
        out["pooled_auc_difference"] = macro_auc_difference_over_runs([ys[c] for c in classes], [[r[c] for r in a] for c in classes],
                                                                      [[r[c] for r in b] for c in classes], pids, n_boot, level, seed)
    if len(a) > 1 or len(b) > 1:
        out["runs_a"], out["runs_b"] = len(a), len(b)
    return out


def compare_cv(a_dir, b_dir, n_boot: int = 1000, level: float = 0.95, seed: int = 0, truth: dict[str, dict] | None = None) -> dict:
    """Recipe A vs recipe B on the same folds: pooled out-of-fold AUC difference (paired by image, CI by patient) and per-fold differences.

    Either side may be an :func:`export_oof` file instead of a CV folder; at
    least one source must be a folder (targets and patients come from it), or
    ``truth`` given: the CV's folds, targets and patients rebuilt from its data
    (:func:`~scintix.training.cv_truth.cv_truth`), so two kept files pair alone.
    Either side may also be a list of sources, one per training seed of that
    recipe (``scintix cv ... -o train.seed=S`` keeps the folds, which follow
    ``data.split.seed``), or a :func:`~scintix.training.crossval.cross_validate_seeds` folder: the
    difference is then between the recipes' mean pooled AUCs, and its CI
    resamples the seeds as well as the patients
    (:func:`~scintix.evaluation.bootstrap.auc_difference_over_runs`), so
    training noise is inside it. Per-fold differences are of seed-mean AUCs.

    Multi-class and multi-label CVs: ``per_class`` holds each class's
    comparison; the top-level numbers are the macro ones (the mean over the
    classes with positives and negatives; per-fold, over the classes a fold can score).
    Segmentation CVs: per-scan Dice, paired (:func:`~scintix.training.cv_segmentation.compare_segmentation_cv`).
    """
    sides = [_sources(a_dir), _sources(b_dir)]
    if any(is_segmentation_source(x) for side in sides for x in side):  # per-scan Dice, not probabilities
        return compare_segmentation_cv(sides, n_boot, level, seed)
    ys, pids, folds, runs, binary = _aligned_oof(sides, f"{a_dir}, {b_dir}", truth)
    names = [[str(x) for x in side] for side in sides]
    out = {"a": names[0] if len(names[0]) > 1 else names[0][0], "b": names[1] if len(names[1]) > 1 else names[1][0], "n": len(pids), "patients": len(set(pids))}
    ci = (n_boot, level, seed)
    if binary:
        return {**out, **_difference(ys, pids, folds, runs, list(ys), *ci)}
    classes = _scored(ys)
    if not classes:
        raise ValueError(f"{a_dir}, {b_dir}: no class has both positive and negative images out of fold")
    task = next((cv_task(x) for side in sides for x in side if Path(x).is_dir()), "multiclass")
    return {**out, "task": task, "classes": classes, "classes_without_auc": [c for c in ys if c not in classes],
            **_difference(ys, pids, folds, runs, classes, *ci),
            "per_class": {c: {"positives": int(ys[c].sum()), **_difference(ys, pids, folds, runs, [c], *ci)} for c in classes}}


def _binary_rows(source: Path, truth: dict[str, dict] | None, what: str) -> tuple[list[dict], str]:
    """A binary CV's out-of-fold rows (``target``, ``prob``, ``patient_id``) and its positive class: from its folder,
    or from its kept file joined with its rebuilt ``truth`` (same images and folds, checked)."""
    if source.is_dir():
        return binary_oof(source, what)
    rows, classes, binary, _ = _oof_by_key(source)
    if not binary:
        raise ValueError(f"{source}: {len(classes)} classes' probabilities; {what} pools one positive class's (binary tasks only)")
    if truth is None:
        raise ValueError(f"{source}: a kept out-of-fold file holds no labels or patients; {what} needs the data that view "
                         "was cross-validated on (--data, --recipe, -o, --views)")
    if set(rows) != set(truth) or any(rows[k]["fold"] != truth[k]["fold"] for k in truth):
        raise ValueError(f"{source} and the data's rebuilt folds do not hold the same images and folds (another view, "
                         "data or split seed?)")
    pos = classes[0]
    if pos not in {r["target"] for r in truth.values()}:
        raise ValueError(f"{source}: class {pos} is not among the data's targets; other data")
    return [{"target": truth[k]["target"], "prob": rows[k]["probs"][pos], "patient_id": truth[k]["patient_id"]} for k in sorted(rows)], pos


def fuse_views(a_dir: str | Path, b_dir: str | Path, how: str = "mean", n_boot: int = 1000, level: float = 0.95, seed: int = 0,
               truth_a: dict[str, dict] | None = None, truth_b: dict[str, dict] | None = None) -> dict:
    """Patient level, two views (P1): late fusion of two cross-validations' out-of-fold probabilities (e.g. ANT and POST).

    Per patient present in both: truth = abnormal in either view, score = the
    mean (or max) of the two views' out-of-fold probabilities (each from a model
    that never saw the patient). Returns the fused AUC and each single view's
    AUC against the same patient-level truth, with paired differences (CI by patient).
    Either view may be a kept out-of-fold file (:func:`export_oof`) with that
    view's rebuilt folds, labels and patients (``truth_a`` / ``truth_b``:
    :func:`~scintix.training.cv_truth.cv_truth` of that view's CV settings).
    """
    if how not in ("mean", "max"):
        raise ValueError(f"view fusion {how!r}: mean or max")
    (ra, pos), (rb, pos_b) = _binary_rows(Path(a_dir), truth_a, "view fusion"), _binary_rows(Path(b_dir), truth_b, "view fusion")
    if pos != pos_b:
        raise ValueError(f"{a_dir} and {b_dir} name different positive classes ({pos!r}, {pos_b!r})")

    def per_patient(rows):
        out: dict[str, tuple[float, float]] = {}
        for r in rows:  # a patient with several images in one view: its most abnormal image
            y, p = float(r["target"] == pos), r["prob"]
            old = out.get(r["patient_id"], (0.0, 0.0))
            out[r["patient_id"]] = (max(old[0], y), max(old[1], p))
        return out

    a, b = per_patient(ra), per_patient(rb)
    pids = sorted(set(a) & set(b))
    if len(pids) < 2:
        raise ValueError(f"{a_dir} and {b_dir} share {len(pids)} patient(s): fusion needs the same patients in both")
    y = np.array([max(a[k][0], b[k][0]) for k in pids])
    pa, pb = np.array([a[k][1] for k in pids]), np.array([b[k][1] for k in pids])
    fused = (pa + pb) / 2 if how == "mean" else np.maximum(pa, pb)
    ci = dict(n_boot=n_boot, level=level, seed=seed)
    return {"a": str(a_dir), "b": str(b_dir), "how": how, "patients": len(pids), "positive_patients": int(y.sum()),
            "truth": f"{pos} in either view", "fused_auc": pooled_auc_ci(y, fused, pids, **ci),
            "a_auc": pooled_auc_ci(y, pa, pids, **ci), "b_auc": pooled_auc_ci(y, pb, pids, **ci),
            "fused_minus_a": paired_auc_difference(y, fused, pa, pids, n_boot, level, seed),
            "fused_minus_b": paired_auc_difference(y, fused, pb, pids, n_boot, level, seed)}


def format_comparison(res: dict) -> list[str]:
    """:func:`compare_cv`'s result as the lines ``scintix cv --compare`` prints (macro first, then each class's)."""
    def lines(r: dict, what: str) -> list[str]:
        d = r["pooled_auc_difference"]
        if "runs_a" in r:  # several training seeds per recipe
            runs_a, runs_b = (", ".join(f"{v:.4f}" for v in d[k]) for k in ("runs_auc_a", "runs_auc_b"))
            head = f"{what}, mean over seeds: A {r['pooled_auc_a']:.4f} ({runs_a}), B {r['pooled_auc_b']:.4f} ({runs_b})"
            how = (f"paired by image; the CI resamples patients and the {r['runs_a']} seeds, in pairs by position" if d["runs_paired"]
                   else f"paired by image; the CI resamples patients and each recipe's {r['runs_a']} / {r['runs_b']} seeds")
        else:
            head = f"{what}: A {r['pooled_auc_a']:.4f}, B {r['pooled_auc_b']:.4f}"
            how = "paired, patient-level bootstrap; one training seed each: training noise is not in the CI"
        return [head, f"  A - B: {d['value']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}] ({how}); "
                      f"per fold {r['per_fold_difference_mean']:+.4f} +- {r['per_fold_difference_sd']:.4f}"]

    if res.get("task") == "segmentation":
        return format_segmentation_comparison(res)
    size = f"{res['n']} images, {res['patients']} patients"
    if "per_class" not in res:
        return [f"{size}", *lines(res, "pooled out-of-fold ROC-AUC")]
    out = [f"{size}; {res['task']}: each class one against the rest, and their macro mean",
           *lines(res, f"macro mean of the classes' pooled out-of-fold ROC-AUCs ({', '.join(res['classes'])})")]
    for c, r in res["per_class"].items():
        out += lines(r, f"{c} ({r['positives']} positive): pooled out-of-fold ROC-AUC")
    if res["classes_without_auc"]:
        out.append(f"not compared (no positive or no negative image out of fold): {', '.join(res['classes_without_auc'])}")
    return out
