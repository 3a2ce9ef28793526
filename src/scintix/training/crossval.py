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
(``fold0/`` ...): an interrupted CV resumes where it stopped. Multi-class and
multi-label recipes are summarised per class; segmenters by out-of-fold Dice
(:mod:`.cv_segmentation`).

A CV's out-of-fold probabilities can be kept without its data
(:func:`export_oof`: fold, a hash of each image's path relative to the data,
probability; no file names, patients or labels), so a later CV on the same
folds can still be paired with it after the fold runs are gone.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..evaluation.bootstrap import bootstrap_ratio_ci, paired_auc_difference
from ..evaluation.report import save_json
from .cv_compare import (
    compare_cv,
    export_oof,
    fuse_views,
    pooled_auc_ci,
    seed_ensemble_auc,
)
from .cv_segmentation import format_segmentation_summary, summarize_segmentation_cv
from .oof import cv_task, fold_dirs, fold_sd, oof_predictions, seed_dirs

__all__ = ["cross_validate", "cross_validate_seeds", "format_seeds", "seed_dirs", "seed_ensemble_auc", "continue_without_selection", "reevaluate_cv", "summarize_cv", "compare_cv", "export_oof", "fuse_views",
           "pooled_auc_ci", "paired_auc_difference", "cv_task", "oof_predictions"]

log = logging.getLogger(__name__)


def fold_config(cfg: RunConfig, folds: int, fold: int, inner_val: float) -> RunConfig:
    split = replace(cfg.data.split, folds=folds, fold=fold, inner_val=inner_val, file=None, use_predefined=False)
    return replace(cfg, data=replace(cfg.data, split=split))


def cross_validate(cfg: RunConfig, out_dir: str | Path, folds: int = 5, inner_val: float = 0.15, max_epochs: int | None = None,
                   init_from: str | Path | None = None, own_settings: bool = True) -> dict:
    """Train and evaluate every fold not yet done (a fold with a checkpoint resumes), then :func:`summarize_cv`.

    ``init_from``: a finished CV of the same data and folds; fold ``f``'s run starts from its fold ``f``'s best
    weights (``model.weights``), which never saw fold ``f``: a two-stage recipe (e.g. P4's U-Net, then the
    report-guided model on it) stays out of fold.
    ``own_settings``: a fold folder already there must have been made with ``cfg``'s settings (refused otherwise);
    False where the folds carry their own (``continue_without_selection``: each resumes with its saved config).
    """
    from ..runfolder import refuse_other_settings
    from .run import train_run

    if cfg.data.task not in ("binary", "multiclass", "multilabel", "segmentation"):
        raise ValueError(f"scintix cv: data.task {cfg.data.task!r} is not one it can pool out of fold")
    starts = _fold_starts(cfg, init_from, folds) if init_from is not None else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in range(folds):
        run_dir = out_dir / f"fold{f}"
        fcfg = fold_config(cfg, folds, f, inner_val)
        if starts:
            fcfg = replace(fcfg, model=replace(fcfg.model, weights=str(starts[f])))
        if own_settings:  # a CV folder of another recipe is not resumed or summarised as this one
            refuse_other_settings(run_dir, fcfg, f"fold {f}")
        if (run_dir / "eval" / "test" / "metrics.json").is_file():
            log.info("fold %d: done earlier (%s)", f, run_dir)
            continue
        resume = (run_dir / "checkpoints" / "last.pt").is_file()
        log.info("fold %d of %d%s", f + 1, folds, " (resuming)" if resume else "")
        train_run(fcfg, run_dir, resume=resume, max_epochs=max_epochs)
        if starts and (run_dir / "folds.csv").read_text() != (starts[f].parents[1] / "folds.csv").read_text():
            raise ValueError(f"{run_dir}: its folds differ from {starts[f].parents[1]}'s (other data or data.split.seed): "
                             "--init-from needs the CV it starts from made on the same folds")
    if max_epochs is None:  # the k fold models, averaged, as one model for new patients (`scintix predict CV_FOLDER`)
        from ..runfolder import write_ensemble

        write_ensemble(out_dir, [out_dir / f"fold{f}" for f in range(folds)])
    return summarize_cv(out_dir)


def _fold_starts(cfg: RunConfig, init_from: str | Path, folds: int) -> list[Path]:
    """Each fold's starting weights from a finished CV, after checking it was made on the same data and folds."""
    import yaml

    init_from = Path(init_from)
    dirs = fold_dirs(init_from)
    if len(dirs) != folds:
        raise ValueError(f"--init-from {init_from}: {len(dirs)} fold runs, this CV has {folds}")
    theirs = yaml.safe_load((dirs[0] / "config.yaml").read_text())["data"]
    def where(source):  # the same data given as another path spelling is the same data
        return str(Path(source).resolve()) if source else None

    ours = {"source": where(cfg.data.source), "split seed": cfg.data.split.seed}
    other = {"source": where(theirs.get("source")), "split seed": theirs.get("split", {}).get("seed")}
    if ours != other:
        raise ValueError(f"--init-from {init_from}: made on {other}, this CV on {ours}; its fold models saw other patients' folds")
    starts = [(d / "checkpoints" / "best.pt").resolve() for d in dirs]  # absolute: a resumed fold's saved config names the same file
    missing = [str(s) for s in starts if not s.is_file()]
    if missing:
        raise FileNotFoundError(f"--init-from {init_from}: not finished ({missing[0]} missing); finish it with scintix cv first")
    return starts


def cross_validate_seeds(cfg: RunConfig, out_dir: str | Path, seeds: list[int], folds: int = 5, inner_val: float = 0.15,
                         init_from: str | Path | None = None, own_settings: bool = True) -> dict:
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
    out_dir = Path(out_dir)
    per_seed = {}
    for s in seeds:
        log.info("training seed %d (%d of %d)", s, seeds.index(s) + 1, len(seeds))
        start = None if init_from is None else Path(init_from) / f"seed{s}" if (Path(init_from) / f"seed{s}").is_dir() else init_from  # seed by seed when it has seeds
        summary = cross_validate(replace(cfg, train=replace(cfg.train, seed=s)), out_dir / f"seed{s}", folds, inner_val, init_from=start,
                                 own_settings=own_settings)
        if summary.get("task") == "segmentation":  # the mean over classes of each class's pooled Dice, and each class's
            dice = {c: v["dice"]["value"] for c, v in summary["per_class"].items()}
            per_seed[s] = {"pooled_dice_mean_over_classes": float(np.mean(list(dice.values()))), "fold_dice_mean": summary["fold_dice_mean"],
                           "fold_dice_sd": summary["fold_dice_sd"], "per_class_pooled_dice": dice}
        elif "per_class" in summary:  # multi-class / multi-label: the macro mean of the classes' pooled AUCs, and each class's
            per_seed[s] = {"pooled_oof_auc_macro": summary["pooled_oof_auc_macro"], "fold_auc_mean": summary["fold_auc_mean"], "fold_auc_sd": summary["fold_auc_sd"],
                           "per_class_pooled_oof_auc": {c: v["pooled_oof_auc"]["value"] for c, v in summary["per_class"].items()}}
        else:
            per_seed[s] = {k: summary[k] for k in ("pooled_oof_auc", "fold_auc_mean", "fold_auc_sd")}
    if cfg.data.task == "segmentation":
        pooled = [v["pooled_dice_mean_over_classes"] for v in per_seed.values()]
        out = {"seeds": seeds, "folds": folds, "task": cfg.data.task, "per_seed": per_seed, "pooled_dice_mean": float(np.mean(pooled)),
               "pooled_dice_sd_over_seeds": float(np.std(pooled, ddof=1)) if len(pooled) > 1 else 0.0,
               "note": "the sd over seeds is training noise on the same patients; each seed's CI is patient sampling alone; "
                       "the seeds' ensemble is written (scintix predict CV) but not scored out of fold (that needs its masks)"}
    else:
        pooled = [v["pooled_oof_auc_macro"] if "pooled_oof_auc_macro" in v else v["pooled_oof_auc"]["value"] for v in per_seed.values()]
        out = {"seeds": seeds, "folds": folds, "task": cfg.data.task, "per_seed": per_seed, "pooled_oof_auc_mean": float(np.mean(pooled)),
               "pooled_oof_auc_sd_over_seeds": float(np.std(pooled, ddof=1)) if len(pooled) > 1 else 0.0,
               "seed_ensemble_pooled_oof_auc": seed_ensemble_auc([out_dir / f"seed{s}" for s in seeds]),
               "note": "the sd over seeds is training noise on the same patients; each seed's CI is patient sampling alone"}
    save_json(out_dir / "cv_seeds.json", out)  # NaN (a class without positives) as null, as metrics.json
    from ..runfolder import write_ensemble

    write_ensemble(out_dir, [out_dir / f"seed{s}" / f"fold{f}" for s in seeds for f in range(folds)])
    return out


RUN_FILES = ("config.yaml", "meta.json", "split.csv", "folds.csv", "data_summary.json", "history.csv", "tokenizer.json")


def _copy_run_files(src: Path, dst: Path) -> None:
    """A fold run's small files (config, split, history, ...) into ``dst``, with an empty ``checkpoints/`` beside them."""
    (dst / "checkpoints").mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (src / name).is_file():
            (dst / name).write_bytes((src / name).read_bytes())


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
    for src in fold_dirs(ref_dir):
        dst = out_dir / src.name
        if dst.exists():
            continue
        if not (src / "checkpoints" / "last.pt").is_file():
            raise FileNotFoundError(f"{src}: no checkpoints/last.pt to continue from")
        cfg = yaml.safe_load((src / "config.yaml").read_text())
        ema = cfg["train"].get("ema")
        tmp = out_dir / f".{src.name}.tmp"  # a fold appears whole or not at all
        _copy_run_files(src, tmp)
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


def reevaluate_cv(ref_dir: str | Path, out_dir: str | Path, overrides: list[str]) -> dict:
    """A finished CV's fold models evaluated again under other ``eval.*`` settings, with no training.

    E.g. test-time augmentation (``eval.tta=[identity,shift]``) or another
    threshold rule, out of fold: each fold's run files and ``best.pt`` are
    copied to ``out_dir`` with the overrides in its config; the fold's
    temperature and threshold are chosen again on its own inner validation
    split and its out-of-fold split scored again. Summarised like any CV
    (pair it with the reference: ``compare_cv(out_dir, ref_dir)``); a fold
    already evaluated in ``out_dir`` with the same overrides is kept (with others: refused).
    """
    import shutil

    import yaml

    from ..config import config_to_dict, load_config
    from ..runfolder import refuse_other_settings
    from .evaluate import evaluate_run

    ref_dir, out_dir = Path(ref_dir), Path(out_dir)
    if not overrides or any(not o.strip().startswith("eval.") for o in overrides):
        raise ValueError(f"re-evaluation takes eval.* overrides only (the fold models are not retrained): {' '.join(overrides) or 'none given'}")
    for src in fold_dirs(ref_dir):
        dst = out_dir / src.name
        cfg = load_config(src / "config.yaml", overrides)  # checked as any recipe's overrides are
        if (dst / "eval" / "test" / "metrics.json").is_file():
            refuse_other_settings(dst, cfg, f"the re-evaluation of {src}")  # kept only when made with these overrides
            continue
        if not (src / "checkpoints" / "best.pt").is_file():
            raise FileNotFoundError(f"{src}: no checkpoints/best.pt to evaluate (is that CV finished?)")
        shutil.rmtree(dst, ignore_errors=True)  # an interrupted evaluation starts again
        _copy_run_files(src, dst)
        shutil.copy2(src / "checkpoints" / "best.pt", dst / "checkpoints" / "best.pt")
        (dst / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
        evaluate_run(dst)
    summary = summarize_cv(out_dir)
    summary["reevaluated_from"] = {"cv": str(ref_dir), "overrides": list(overrides)}
    save_json(out_dir / "cv_summary.json", summary)
    return summary


def summarize_cv(out_dir: str | Path, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """``cv_summary.json`` and ``oof_predictions.csv`` from the fold runs; returns the summary."""
    out_dir = Path(out_dir)
    if cv_task(out_dir) == "segmentation":  # per-image Dice at each fold's own threshold (oof_per_image.csv)
        return _write_summary(out_dir, *summarize_segmentation_cv(out_dir, n_boot, level, seed), file="oof_per_image.csv")
    rows, positive = oof_predictions(out_dir)
    if not positive:
        return _write_summary(out_dir, rows, _summary_by_class(out_dir, rows, n_boot, level, seed))
    per_fold = []
    for d in fold_dirs(out_dir):
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
        "fold_auc_mean": float(np.nanmean(aucs)), "fold_auc_sd": fold_sd(aucs),
        **_pooled(y, p, called, pids, ci),
        # P1's other metrics, each a ratio of per-image sums (F1 = 2TP / (2TP + FP + FN)), so the same patient bootstrap applies
        "pooled_accuracy_at_fold_thresholds": bootstrap_ratio_ci((called == y).astype(float), np.ones_like(y), pids, **ci),
        "pooled_precision_at_fold_thresholds": bootstrap_ratio_ci(called * y, called, pids, **ci),
        "pooled_f1_at_fold_thresholds": bootstrap_ratio_ci(2 * called * y, called + y, pids, **ci),
        "ci": f"{level:.0%} patient-level bootstrap, {n_boot} replicates",
        "protocol": "patient-grouped stratified k-fold; each fold's run selects, thresholds and calibrates on an inner grouped validation split of the other folds",
    }
    return _write_summary(out_dir, rows, summary)


def _write_summary(out_dir: Path, rows: list[dict], summary: dict, file: str = "oof_predictions.csv") -> dict:
    synthetic = any(json.loads((d / "meta.json").read_text()).get("synthetic") for d in fold_dirs(out_dir) if (d / "meta.json").is_file())
    summary["synthetic"] = bool(synthetic)
    with open(out_dir / file, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    save_json(out_dir / "cv_summary.json", summary)
    return summary


def _pooled(y: np.ndarray, p: np.ndarray, called: np.ndarray, pids, ci: dict) -> dict:
    """One class's pooled out-of-fold AUC, and its sensitivity/specificity at each fold's own decisions (patient CIs)."""
    return {"pooled_oof_auc": pooled_auc_ci(y, p, pids, **ci),
            "pooled_sensitivity_at_fold_thresholds": bootstrap_ratio_ci(called * y, y, pids, **ci),
            "pooled_specificity_at_fold_thresholds": bootstrap_ratio_ci((1 - called) * (1 - y), 1 - y, pids, **ci)}


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
    for d in fold_dirs(out_dir):
        m = json.loads((d / "eval" / "test" / "metrics.json").read_text())
        aucs = {c: m["per_class"][c]["roc_auc"]["value"] for c in per_class if c in m["per_class"]}
        per_fold.append({"fold": int(d.name[4:]), "n": m["n"], "patients": m["patients"], "roc_auc": float(np.nanmean(list(aucs.values()))) if aucs else float("nan"),
                         "per_class_roc_auc": aucs})
    fold_macro = np.array([f["roc_auc"] for f in per_fold], float)
    return {
        "task": cv_task(out_dir), "folds": len(per_fold), "n": len(rows), "patients": len(set(pids)), "classes": list(per_class), "per_fold": per_fold,
        "fold_auc_mean": float(np.nanmean(fold_macro)), "fold_auc_sd": fold_sd(fold_macro),
        "per_class": per_class, "pooled_oof_auc_macro": float(np.mean([v["pooled_oof_auc"]["value"] for v in per_class.values()])) if per_class else float("nan"),
        "ci": f"{level:.0%} patient-level bootstrap, {n_boot} replicates, per class (the macro mean has none)",
        "protocol": "patient-grouped stratified k-fold; each fold's run selects, thresholds and calibrates on an inner grouped validation split of the other folds",
    }


def format_summary(s: dict) -> str:
    def f(m):
        return f"{m['value']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"

    lines = ["*** SYNTHETIC DATA: these numbers say nothing about real scans ***"] if s.get("synthetic") else []
    if s.get("task") == "segmentation":
        return "\n".join(lines + format_segmentation_summary(s))
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


def format_seeds(res: dict) -> str:
    """:func:`cross_validate_seeds`'s result as ``scintix cv --seeds`` prints it: each seed's pooled figure, then the spread over seeds."""
    seeds = len(res["per_seed"])
    if res["task"] == "segmentation":
        lines = [f"seed {s}: pooled out-of-fold Dice " + ", ".join(f"{c} {v:.4f}" for c, v in r["per_class_pooled_dice"].items())
                 + f"; folds {r['fold_dice_mean']:.4f} +- {r['fold_dice_sd']:.4f}" for s, r in res["per_seed"].items()]
        lines.append(f"over {seeds} training seeds: pooled Dice {res['pooled_dice_mean']:.4f} +- {res['pooled_dice_sd_over_seeds']:.4f} (sd: training noise, same patients)")
        return "\n".join(lines)
    macro = res["task"] != "binary"
    lines = []
    for s, r in res["per_seed"].items():
        m = r["pooled_oof_auc"] if not macro else None
        lines.append(f"seed {s}: " + (f"pooled out-of-fold ROC-AUC {m['value']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]" if m else
                                      f"macro mean of the pooled ROC-AUCs {r['pooled_oof_auc_macro']:.4f} ("
                                      + ", ".join(f"{c} {v:.4f}" for c, v in r["per_class_pooled_oof_auc"].items()) + ")")
                     + f"; folds {r['fold_auc_mean']:.4f} +- {r['fold_auc_sd']:.4f}")
    e = res["seed_ensemble_pooled_oof_auc"]
    ens = f"{e['value']:.4f} [{e['ci_low']:.4f}, {e['ci_high']:.4f}]" if not macro else (
        f"{e['value']:.4f} (macro; " + ", ".join(f"{c} {v['value']:.4f} [{v['ci_low']:.4f}, {v['ci_high']:.4f}]" for c, v in e["per_class"].items()) + ")")
    lines.append(f"over {seeds} training seeds: pooled{' macro' if macro else ''} {res['pooled_oof_auc_mean']:.4f} +- {res['pooled_oof_auc_sd_over_seeds']:.4f} "
                 f"(sd: training noise, same patients); their mean probability (an ensemble of the seeds, still out of fold) {ens}")
    return "\n".join(lines)
