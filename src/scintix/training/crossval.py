"""``scintix cv``: compare recipes the way that does not fool us, by patient-grouped, stratified k-fold cross-validation.

Every patient is out of fold exactly once. Fold ``f``'s run trains on the
other folds, less a grouped, stratified ``inner_val`` share of their patients
that is its validation split (checkpoint selection, threshold, temperature),
and is tested on fold ``f`` (``data.split.inner_val``, see
:func:`scintix.data.splits.cv_fold_split`). Nothing about the out-of-fold
patients steers their own run, so the pooled out-of-fold predictions give an
honest estimate over all patients: per-fold AUC (mean and sd), the pooled
out-of-fold AUC with a patient-level CI, and sensitivity/specificity at each
fold's own validation threshold. Two CV folders made with the same folds
compare paired (:func:`compare_cv`), also as several training seeds per
recipe, whose spread then enters the CI. Fold runs are ordinary run folders
(``fold0/`` ...): an interrupted CV resumes where it stopped.

A CV's out-of-fold probabilities can be kept without its data
(:func:`export_oof`: fold, a hash of each image's path relative to the data,
probability; no file names, patients or labels), so a later CV on the same
folds can still be paired with it after the fold runs are gone.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..evaluation.bootstrap import (
    auc_difference_over_runs,
    bootstrap_ci,
    bootstrap_ratio_ci,
    paired_auc_difference,
)
from ..evaluation.metrics import roc_auc

__all__ = ["cross_validate", "cross_validate_seeds", "seed_dirs", "seed_ensemble_auc", "continue_without_selection", "summarize_cv", "compare_cv", "export_oof", "fuse_views",
           "pooled_auc_ci", "paired_auc_difference", "cv_task"]

log = logging.getLogger(__name__)


def fold_config(cfg: RunConfig, folds: int, fold: int, inner_val: float) -> RunConfig:
    split = replace(cfg.data.split, folds=folds, fold=fold, inner_val=inner_val, file=None, use_predefined=False)
    return replace(cfg, data=replace(cfg.data, split=split))


def cross_validate(cfg: RunConfig, out_dir: str | Path, folds: int = 5, inner_val: float = 0.15, max_epochs: int | None = None) -> dict:
    """Train and evaluate every fold not yet done (a fold with a checkpoint resumes), then :func:`summarize_cv`."""
    from .run import train_run

    if cfg.data.task not in ("binary", "multiclass", "multilabel"):
        raise ValueError(f"scintix cv pools out-of-fold probabilities of a classification task; data.task is {cfg.data.task!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in range(folds):
        run_dir = out_dir / f"fold{f}"
        if (run_dir / "eval" / "test" / "predictions.csv").is_file():
            log.info("fold %d: done earlier (%s)", f, run_dir)
            continue
        resume = (run_dir / "checkpoints" / "last.pt").is_file()
        log.info("fold %d of %d%s", f + 1, folds, " (resuming)" if resume else "")
        train_run(fold_config(cfg, folds, f, inner_val), run_dir, resume=resume, max_epochs=max_epochs)
    if max_epochs is None:  # the k fold models, averaged, as one model for new patients (`scintix predict CV_FOLDER`)
        from ..runfolder import write_ensemble

        write_ensemble(out_dir, [out_dir / f"fold{f}" for f in range(folds)])
    return summarize_cv(out_dir)


def cross_validate_seeds(cfg: RunConfig, out_dir: str | Path, seeds: list[int], folds: int = 5, inner_val: float = 0.15) -> dict:
    """:func:`cross_validate` once per training seed (``seed<S>/``, ``train.seed=S``) on the same folds; ``cv_seeds.json``.

    One CV is one draw of the training: rerunning it with another seed (or
    other arithmetic) moves fold AUCs by a few hundredths, which its
    patient-level CI does not hold. The folds follow ``data.split.seed``, so
    every seed sees the same patients out of fold, and :func:`compare_cv`
    given two such folders compares the recipes over their seeds. The folder
    is also one ensemble of all seeds' fold models (``scintix predict``).
    """
    if len(set(seeds)) != len(seeds) or not seeds:
        raise ValueError(f"--seeds {seeds}: one or more distinct training seeds")
    if cfg.data.task != "binary":
        raise ValueError(f"--seeds compares the pooled AUC of one positive class (binary tasks); data.task is {cfg.data.task!r}: "
                         "run one CV per seed (-o train.seed=S) and read each summary's per-class AUCs")
    out_dir = Path(out_dir)
    per_seed = {}
    for s in seeds:
        log.info("training seed %d (%d of %d)", s, seeds.index(s) + 1, len(seeds))
        summary = cross_validate(replace(cfg, train=replace(cfg.train, seed=s)), out_dir / f"seed{s}", folds, inner_val)
        per_seed[s] = {k: summary[k] for k in ("pooled_oof_auc", "fold_auc_mean", "fold_auc_sd")}
    pooled = [v["pooled_oof_auc"]["value"] for v in per_seed.values()]
    out = {"seeds": seeds, "folds": folds, "per_seed": per_seed, "pooled_oof_auc_mean": float(np.mean(pooled)),
           "pooled_oof_auc_sd_over_seeds": float(np.std(pooled, ddof=1)) if len(pooled) > 1 else 0.0,
           "seed_ensemble_pooled_oof_auc": seed_ensemble_auc([out_dir / f"seed{s}" for s in seeds]),
           "note": "the sd over seeds is training noise on the same patients; each seed's CI is patient sampling alone"}
    (out_dir / "cv_seeds.json").write_text(json.dumps(out, indent=2))
    from ..runfolder import write_ensemble

    write_ensemble(out_dir, [out_dir / f"seed{s}" / f"fold{f}" for s in seeds for f in range(folds)])
    return out


def seed_dirs(path: str | Path) -> list[Path]:
    """A :func:`cross_validate_seeds` folder's CV folders (``seed<S>/``, by seed); ``[path]`` for anything else."""
    path = Path(path)
    found = sorted((d for d in path.glob("seed*") if d.is_dir() and d.name[4:].isdigit()), key=lambda d: int(d.name[4:])) if path.is_dir() else []
    return found or [path]


RUN_FILES = ("config.yaml", "meta.json", "split.csv", "folds.csv", "data_summary.json", "history.csv", "tokenizer.json")


def continue_without_selection(ref_dir: str | Path, out_dir: str | Path) -> list[int]:
    """Start a CV without checkpoint selection (``train.select_metric=last``) from a finished CV of the same recipe.

    Selection does not change training (everything random in an epoch derives
    from the seed and the epoch), so the reference's fold runs are the same
    trajectories up to where each stopped early. Each fold's run files and
    ``last.pt`` are copied to ``out_dir`` with ``select_metric: last``: a fold
    that stopped early continues to ``train.epochs`` when :func:`cross_validate`
    resumes it; one that ran its full length ships that final epoch as it is.
    Equal to training the variant from scratch (tested, ``train.ema`` runs too: a full-length fold ships the final
    epoch's average), for the remaining epochs' cost.
    Returns the folds prepared (a fold already in ``out_dir`` is left alone).
    """
    import yaml

    from ..checkpoint import load_checkpoint, save_checkpoint

    ref_dir, out_dir = Path(ref_dir), Path(out_dir)
    prepared = []
    for src in _fold_dirs(ref_dir):
        dst = out_dir / src.name
        if dst.exists():
            continue
        if not (src / "checkpoints" / "last.pt").is_file():
            raise FileNotFoundError(f"{src}: no checkpoints/last.pt to continue from")
        cfg = yaml.safe_load((src / "config.yaml").read_text())
        ema = cfg["train"].get("ema")
        tmp = out_dir / f".{src.name}.tmp"  # a fold appears whole or not at all
        (tmp / "checkpoints").mkdir(parents=True, exist_ok=True)
        for name in RUN_FILES:
            if (src / name).is_file():
                (tmp / name).write_bytes((src / name).read_bytes())
        cfg["train"]["select_metric"] = "last"
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        ck = load_checkpoint(src / "checkpoints" / "last.pt")
        ck["state"].update(best_score=-np.inf, best_epoch=-1, bad_epochs=0)  # stopped early: nothing selected yet, every epoch from here replaces best.pt
        if ck["state"]["epoch"] >= cfg["train"]["epochs"]:  # ran its full length: the final epoch is the model, selected here
            ref_best = load_checkpoint(src / "checkpoints" / "best.pt") if (src / "checkpoints" / "best.pt").is_file() else {}
            row = ck["state"]["history"][-1]
            main = next(k for k in row if k.startswith("val_") and k != "val_loss")
            selection = {"epoch": row["epoch"], "criterion": "last", "value": row[main], "val_loss": row["val_loss"], main: row[main], "max_loss_ratio": None,
                         "precise_bn_batches": ref_best.get("selection", {}).get("precise_bn_batches"), "weights": f"EMA, decay {ema}" if ema else "as trained"}
            ck["state"].update(best_score=float(row["epoch"]), best_epoch=row["epoch"])
            # train.ema ships the average: last.pt keeps it as the final epoch validated it (BatchNorm statistics recomputed)
            save_checkpoint({"model": ck["ema"] if ema else ck["model"], "epoch": row["epoch"], "score": float(row["epoch"]), "classes": ck["classes"], "selection": selection},
                            tmp / "checkpoints" / "best.pt")
        save_checkpoint(ck, tmp / "checkpoints" / "last.pt")
        tmp.rename(dst)
        prepared.append(int(src.name[4:]))
    return prepared


def pooled_auc_ci(y, p, patient_ids, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """ROC-AUC of pooled predictions with a percentile CI from resampling patients (:func:`~scintix.evaluation.bootstrap.bootstrap_ci`)."""
    return bootstrap_ci(y, p, patient_ids, 0.5, n_boot, level, seed)["roc_auc"]


def _fold_dirs(out_dir: Path) -> list[Path]:
    dirs = sorted((d for d in out_dir.glob("fold*") if d.is_dir() and d.name[4:].isdigit()), key=lambda d: int(d.name[4:]))
    if not dirs:
        if seed_dirs(out_dir) != [out_dir]:
            raise FileNotFoundError(f"{out_dir} holds one CV per training seed (seed0/, ...): give one of them here (--compare takes the whole folder)")
        raise FileNotFoundError(f"{out_dir}: no fold runs (fold0/, fold1/, ...); run `scintix cv` first")
    return dirs


def cv_task(out_dir: str | Path) -> str:
    """The task its fold runs were trained for (``binary``, ``multiclass``, ``multilabel``; ``binary`` for fold folders
    without their config, e.g. predictions kept alone)."""
    import yaml

    cfg = _fold_dirs(Path(out_dir))[0] / "config.yaml"
    return yaml.safe_load(cfg.read_text())["data"].get("task", "binary") if cfg.is_file() else "binary"


def _binary_oof(out_dir, what: str) -> tuple[list[dict], str]:
    """:func:`oof_predictions` of a binary CV; a one-line refusal for the others (``what`` pools one positive class)."""
    rows, positive = oof_predictions(out_dir)
    if not positive:
        raise ValueError(f"{out_dir}: a {cv_task(out_dir)} CV; {what} pools one positive class's probabilities (binary tasks only); its summary has each class's pooled AUC")
    return rows, positive


def oof_predictions(out_dir: str | Path) -> tuple[list[dict], str]:
    """Every fold's test predictions (the out-of-fold ones), with the fold, and the positive class's name.

    Binary: ``prob`` is the positive class's probability. Multi-class and multi-label: each row has every class's
    ``prob_<class>`` instead, and the positive class is ``""``.
    """
    out_dir = Path(out_dir)
    rows, positive, folds_file = [], None, None
    per_class = cv_task(out_dir) != "binary"
    for d in _fold_dirs(out_dir):
        pred = d / "eval" / "test" / "predictions.csv"
        if not pred.is_file():
            raise FileNotFoundError(f"{d}: not evaluated yet (no eval/test/predictions.csv); run `scintix cv` again to finish it")
        text = (d / "folds.csv").read_text() if (d / "folds.csv").is_file() else None
        if folds_file is not None and text != folds_file:
            raise ValueError(f"{d}: its fold assignment differs from the other folds' (different data or split seed)")
        folds_file = text
        with open(pred, newline="", encoding="utf-8") as fh:
            for r in csv.DictReader(fh):
                probs = [k for k in r if k.startswith("prob_")]
                row = {"fold": int(d.name[4:]), "path": r["path"], "patient_id": r["patient_id"], "target": r["target"], "predicted": r["predicted"]}
                if per_class:
                    row.update({k: float(r[k]) for k in probs})
                else:
                    positive = positive or probs[-1][5:]
                    row["prob"] = float(r[f"prob_{positive}"])
                rows.append(row)
    return rows, positive or ""


def summarize_cv(out_dir: str | Path, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """``cv_summary.json`` and ``oof_predictions.csv`` from the fold runs; returns the summary."""
    out_dir = Path(out_dir)
    rows, positive = oof_predictions(out_dir)
    if not positive:
        return _write_summary(out_dir, rows, _summary_by_class(out_dir, rows, n_boot, level, seed))
    per_fold = []
    for d in _fold_dirs(out_dir):
        m = json.loads((d / "eval" / "test" / "metrics.json").read_text())
        met = m["per_class"][positive]
        per_fold.append({"fold": int(d.name[4:]), "n": m["n"], "patients": m["patients"], "positives": m["positives"][positive],
                         "threshold": m["thresholds"][positive], **{k: met[k]["value"] for k in ("roc_auc", "pr_auc", "sensitivity", "specificity") if k in met}})
    y = np.array([r["target"] == positive for r in rows], float)
    p = np.array([r["prob"] for r in rows])
    pids = [r["patient_id"] for r in rows]
    called = np.array([r["predicted"] == positive for r in rows], float)
    aucs = np.array([f["roc_auc"] for f in per_fold], float)
    ci = dict(n_boot=n_boot, level=level, seed=seed)
    summary = {
        "folds": len(per_fold), "n": len(rows), "patients": len(set(pids)), "positives": int(y.sum()), "positive_class": positive,
        "per_fold": per_fold,
        "fold_auc_mean": float(np.nanmean(aucs)), "fold_auc_sd": _sd(aucs),
        **_pooled(y, p, called, pids, ci),
        # P1's other metrics, each a ratio of per-image sums (F1 = 2TP / (2TP + FP + FN)), so the same patient bootstrap applies
        "pooled_accuracy_at_fold_thresholds": bootstrap_ratio_ci((called == y).astype(float), np.ones_like(y), pids, **ci),
        "pooled_precision_at_fold_thresholds": bootstrap_ratio_ci(called * y, called, pids, **ci),
        "pooled_f1_at_fold_thresholds": bootstrap_ratio_ci(2 * called * y, called + y, pids, **ci),
        "ci": f"{level:.0%} patient-level bootstrap, {n_boot} replicates",
        "protocol": "patient-grouped stratified k-fold; each fold's run selects, thresholds and calibrates on an inner grouped validation split of the other folds",
    }
    return _write_summary(out_dir, rows, summary)


def _write_summary(out_dir: Path, rows: list[dict], summary: dict) -> dict:
    synthetic = any(json.loads((d / "meta.json").read_text()).get("synthetic") for d in _fold_dirs(out_dir) if (d / "meta.json").is_file())
    summary["synthetic"] = bool(synthetic)
    with open(out_dir / "oof_predictions.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out_dir / "cv_summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _pooled(y: np.ndarray, p: np.ndarray, called: np.ndarray, pids, ci: dict) -> dict:
    """One class's pooled out-of-fold AUC, and its sensitivity/specificity at each fold's own decisions (patient CIs)."""
    return {"pooled_oof_auc": pooled_auc_ci(y, p, pids, **ci),
            "pooled_sensitivity_at_fold_thresholds": bootstrap_ratio_ci(called * y, y, pids, **ci),
            "pooled_specificity_at_fold_thresholds": bootstrap_ratio_ci((1 - called) * (1 - y), 1 - y, pids, **ci)}


def _sd(values: np.ndarray) -> float:
    return float(np.nanstd(values, ddof=1)) if len(values) > 1 else 0.0


def _summary_by_class(out_dir: Path, rows: list[dict], n_boot: int, level: float, seed: int) -> dict:
    """Multi-class (each class one-vs-rest) and multi-label (each label): the binary summary's numbers per class, and
    their unweighted (macro) means, as a single run's evaluation reports them."""
    classes = [k[5:] for k in rows[0] if k.startswith("prob_")]
    pids = [r["patient_id"] for r in rows]
    ci = dict(n_boot=n_boot, level=level, seed=seed)
    per_class = {}
    for c in classes:  # targets and decisions are class names, ";"-joined for several labels
        y = np.array([c in r["target"].split(";") for r in rows], float)
        if 0 < y.sum() < len(y):
            called = np.array([c in r["predicted"].split(";") for r in rows], float)
            per_class[c] = {"positives": int(y.sum()), **_pooled(y, np.array([r[f"prob_{c}"] for r in rows]), called, pids, ci)}
    per_fold = []
    for d in _fold_dirs(out_dir):
        m = json.loads((d / "eval" / "test" / "metrics.json").read_text())
        aucs = {c: m["per_class"][c]["roc_auc"]["value"] for c in per_class if c in m["per_class"]}
        per_fold.append({"fold": int(d.name[4:]), "n": m["n"], "patients": m["patients"], "roc_auc": float(np.nanmean(list(aucs.values()))) if aucs else float("nan"),
                         "per_class_roc_auc": aucs})
    fold_macro = np.array([f["roc_auc"] for f in per_fold], float)
    return {
        "task": cv_task(out_dir), "folds": len(per_fold), "n": len(rows), "patients": len(set(pids)), "classes": list(per_class), "per_fold": per_fold,
        "fold_auc_mean": float(np.nanmean(fold_macro)), "fold_auc_sd": _sd(fold_macro),
        "per_class": per_class, "pooled_oof_auc_macro": float(np.mean([v["pooled_oof_auc"]["value"] for v in per_class.values()])) if per_class else float("nan"),
        "ci": f"{level:.0%} patient-level bootstrap, {n_boot} replicates, per class (the macro mean has none)",
        "protocol": "patient-grouped stratified k-fold; each fold's run selects, thresholds and calibrates on an inner grouped validation split of the other folds",
    }


def image_keys(paths: list[str]) -> list[str]:
    """A short hash per sample key (``a.png|b.png`` for several views) of its paths relative to all the samples' common folder.

    The same images give the same hashes on any machine and under any data
    root; the hashes name no file and no patient.
    """
    parts = [k.split("|") for k in paths]
    flat = [os.path.abspath(x) for ps in parts for x in ps]
    root = os.path.commonpath(flat) if len(set(flat)) > 1 else os.path.dirname(flat[0]) if flat else ""
    rel = ["|".join(Path(os.path.relpath(os.path.abspath(x), root)).as_posix() for x in ps) for ps in parts]
    return [hashlib.sha1(r.encode()).hexdigest()[:16] for r in rel]


def export_oof(cv_dir: str | Path, file: str | Path) -> Path:
    """A CV's out-of-fold probabilities without its data: ``fold, key, prob`` per image (:func:`image_keys`), for :func:`compare_cv` later."""
    rows, positive = _binary_oof(cv_dir, "export")
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    with open(file, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["fold", "key", f"prob_{positive}"])
        for r, k in sorted(zip(rows, image_keys([r["path"] for r in rows])), key=lambda t: (t[0]["fold"], t[1])):
            w.writerow([r["fold"], k, f"{r['prob']:.6f}"])
    return file


def _oof_by_key(source: Path) -> tuple[dict[str, dict], str, bool]:
    """``{key: row}`` from a CV folder (rows carry target and patient) or from an :func:`export_oof` file (they do not)."""
    if source.is_dir():
        rows, positive = _binary_oof(source, "a paired comparison")
        return dict(zip(image_keys([r["path"] for r in rows]), rows)), positive, True
    with open(source, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        prob = [f for f in reader.fieldnames or [] if f.startswith("prob_")]
        if not {"fold", "key"} <= set(reader.fieldnames or []) or len(prob) != 1:
            raise ValueError(f"{source}: not a CV folder nor an exported out-of-fold file (fold, key, prob_<class>)")
        rows = {r["key"]: {"fold": int(r["fold"]), "prob": float(r[prob[0]])} for r in reader}
    return rows, prob[0][5:], False


def _aligned_oof(sides: list[list[Path]], what: str):
    """Targets, patients, folds and each source's probabilities, on the same images in the same order (paired).

    ``sides`` groups the sources (e.g. two recipes' seeds); at least one must be a CV folder (labels, patients);
    all must hold the same images, folds and positive class.
    """
    loaded = [[_oof_by_key(x) for x in side] for side in sides]
    if not any(full for side in loaded for _, _, full in side):
        raise ValueError(f"{what}: at least one side must be a CV folder (the exported files hold no labels)")
    (ref, pos, _), ref_src = next(((t, x) for side, srcs in zip(loaded, sides) for t, x in zip(side, srcs) if t[2]))
    for side, srcs in zip(loaded, sides):
        for (rows, p, _), x in zip(side, srcs):
            if p != pos:
                raise ValueError(f"{x} and {ref_src} name different positive classes ({p!r}, {pos!r})")
            if set(rows) != set(ref) or any(rows[k]["fold"] != ref[k]["fold"] for k in ref):
                raise ValueError(f"{x} and {ref_src} were not cross-validated on the same images and folds: a paired comparison needs both")
    keys = sorted(ref)
    y = np.array([ref[k]["target"] == pos for k in keys], float)
    runs = [[np.array([rows[k]["prob"] for k in keys]) for rows, _, _ in side] for side in loaded]
    return y, [ref[k]["patient_id"] for k in keys], np.array([ref[k]["fold"] for k in keys]), runs


def seed_ensemble_auc(sources, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Pooled out-of-fold AUC of the mean of several seeds' probabilities per image (patient-level CI).

    Each seed's fold-``f`` model never saw fold ``f``, so neither does their
    mean: an honest out-of-fold estimate for "the recipe, trained with these
    seeds and averaged" (k times the training), beside each seed alone.
    """
    srcs = [d for x in ([sources] if isinstance(sources, (str, Path)) else sources) for d in seed_dirs(x)]
    y, pids, _, (runs,) = _aligned_oof([srcs], ", ".join(map(str, srcs)))
    return {"seeds": len(runs), **pooled_auc_ci(y, np.mean(runs, axis=0), pids, n_boot, level, seed)}


def compare_cv(a_dir, b_dir, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Recipe A vs recipe B on the same folds: pooled out-of-fold AUC difference (paired by image, CI by patient) and per-fold differences.

    Either side may be an :func:`export_oof` file instead of a CV folder; at
    least one source must be a folder (targets and patients come from it).
    Either side may also be a list of sources, one per training seed of that
    recipe (``scintix cv ... -o train.seed=S`` keeps the folds, which follow
    ``data.split.seed``), or a :func:`cross_validate_seeds` folder: the
    difference is then between the recipes' mean pooled AUCs, and its CI
    resamples the seeds as well as the patients
    (:func:`~scintix.evaluation.bootstrap.auc_difference_over_runs`), so
    training noise is inside it. Per-fold differences are of seed-mean AUCs.
    """
    sides = [[d for x in ([a] if isinstance(a, (str, Path)) else a) for d in seed_dirs(x)] for a in (a_dir, b_dir)]
    y, pids, folds, runs = _aligned_oof(sides, f"{a_dir}, {b_dir}")

    def fold_auc(side, f):  # a recipe's AUC on fold f, averaged over its runs
        return float(np.mean([roc_auc(y[folds == f], p[folds == f]) for p in side]))

    per_fold = [fold_auc(runs[0], f) - fold_auc(runs[1], f) for f in sorted(set(folds))]
    names = [[str(x) for x in side] for side in sides]
    out = {"a": names[0] if len(names[0]) > 1 else names[0][0], "b": names[1] if len(names[1]) > 1 else names[1][0], "n": len(y), "patients": len(set(pids)),
           "pooled_auc_a": float(np.mean([roc_auc(y, p) for p in runs[0]])), "pooled_auc_b": float(np.mean([roc_auc(y, p) for p in runs[1]])),
           "per_fold_difference": per_fold, "per_fold_difference_mean": float(np.mean(per_fold)),
           "per_fold_difference_sd": float(np.std(per_fold, ddof=1)) if len(per_fold) > 1 else 0.0}
    if len(runs[0]) == len(runs[1]) == 1:
        out["pooled_auc_difference"] = paired_auc_difference(y, runs[0][0], runs[1][0], pids, n_boot, level, seed)
    else:
        out["pooled_auc_difference"] = auc_difference_over_runs(y, runs[0], runs[1], pids, n_boot, level, seed)
        out["runs_a"], out["runs_b"] = len(runs[0]), len(runs[1])
    return out


def fuse_views(a_dir: str | Path, b_dir: str | Path, how: str = "mean", n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Patient level, two views (P1): late fusion of two cross-validations' out-of-fold probabilities (e.g. ANT and POST).

    Per patient present in both: truth = abnormal in either view, score = the
    mean (or max) of the two views' out-of-fold probabilities (each from a model
    that never saw the patient). Returns the fused AUC and each single view's
    AUC against the same patient-level truth, with paired differences (CI by patient).
    """
    if how not in ("mean", "max"):
        raise ValueError(f"view fusion {how!r}: mean or max")
    (ra, pos), (rb, pos_b) = _binary_oof(a_dir, "view fusion"), _binary_oof(b_dir, "view fusion")
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


def format_summary(s: dict) -> str:
    def f(m):
        return f"{m['value']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"

    lines = ["*** SYNTHETIC DATA: these numbers say nothing about real scans ***"] if s.get("synthetic") else []
    if s.get("task", "binary") != "binary":  # multi-class / multi-label
        lines.append(f"{s['folds']}-fold cross-validation ({s['task']}): {s['n']} images, {s['patients']} patients")
        for r in s["per_fold"]:
            lines.append(f"  fold {r['fold']}: macro ROC-AUC {r['roc_auc']:.4f}  ({r['n']} images)")
        lines.append(f"fold macro ROC-AUC mean {s['fold_auc_mean']:.4f} +- {s['fold_auc_sd']:.4f} (sd)")
        for c, v in s["per_class"].items():
            lines.append(f"{c}: pooled out-of-fold ROC-AUC {f(v['pooled_oof_auc'])} ({v['positives']} positive); sensitivity "
                         f"{f(v['pooled_sensitivity_at_fold_thresholds'])}, specificity {f(v['pooled_specificity_at_fold_thresholds'])} at each fold's decisions")
        lines.append(f"macro mean of the pooled ROC-AUCs {s['pooled_oof_auc_macro']:.4f} (CIs: patient sampling, one training seed)")
        return "\n".join(lines)
    lines.append(f"{s['folds']}-fold cross-validation: {s['n']} images, {s['patients']} patients, {s['positives']} positive ({s['positive_class']})")
    for r in s["per_fold"]:
        lines.append(f"  fold {r['fold']}: ROC-AUC {r['roc_auc']:.4f}  ({r['n']} images, {r['positives']} positive, threshold {r['threshold']:.3f} from its own val)")
    lines.append(f"fold ROC-AUC mean {s['fold_auc_mean']:.4f} +- {s['fold_auc_sd']:.4f} (sd)")
    lines.append(f"pooled out-of-fold ROC-AUC {f(s['pooled_oof_auc'])} (CI: patient sampling; one training seed: `--seeds 0 1 2` measures training noise too)")
    lines.append(f"pooled sensitivity {f(s['pooled_sensitivity_at_fold_thresholds'])}, specificity {f(s['pooled_specificity_at_fold_thresholds'])} at each fold's val threshold")
    if "pooled_f1_at_fold_thresholds" in s:  # summaries written before these were added lack them
        lines.append(f"pooled accuracy {f(s['pooled_accuracy_at_fold_thresholds'])}, precision {f(s['pooled_precision_at_fold_thresholds'])}, "
                     f"F1 {f(s['pooled_f1_at_fold_thresholds'])} at the same thresholds")
    return "\n".join(lines)
