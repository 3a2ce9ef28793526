"""``scintix cv``: the cross-validation subcommand (:mod:`scintix.training.crossval` does the work)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_cv_parser", "cmd_cv", "cmd_ensemble"]


def add_cv_parser(sub) -> None:
    p = sub.add_parser("cv", help="patient-grouped, stratified k-fold cross-validation of a recipe: per-fold and pooled out-of-fold AUC (Dice for a segmenter) with CIs (resumable)")
    p.add_argument("--recipe", default="quickstart", help="recipe name or YAML file [quickstart]")
    p.add_argument("--data", help="manifest CSV, MedMNIST .npz, or a folder holding one")
    p.add_argument("--out", help="CV folder (fold0/ ... fold<k-1>/, cv_summary.json); an existing one is resumed")
    p.add_argument("--folds", type=int, default=5, help="k [5]")
    p.add_argument("--inner-val", type=float, default=0.15, help="share of each fold run's training patients held out as its validation split [0.15]")
    p.add_argument("--epochs", type=int, help="shortcut for -o train.epochs=N")
    p.add_argument("--seeds", type=int, nargs="+", metavar="S", help="one CV per training seed on the same folds (OUT/seed<S>/): the spread over seeds is training noise, "
                   "and --compare of two such folders compares the recipes over their seeds")
    p.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    e = sub.add_parser("ensemble", help="one model from several evaluated runs (mean calibrated probability; `scintix cv` writes one of its folds)")
    e.add_argument("runs", nargs="+", help="evaluated run folders with the same classes and preprocessing")
    e.add_argument("--out", required=True, help="ensemble folder (ensemble.json): give it to predict, explain, serve like a run")
    p.add_argument("--fuse-views", nargs=2, metavar=("CV_VIEW_A", "CV_VIEW_B"), help="instead: patient-level late fusion of two finished CVs of the two views (e.g. ANT, POST); "
                   "either may be a file written by --export-oof (give --data, --recipe, -o, --folds, --inner-val of their CVs and --views)")
    p.add_argument("--views", nargs=2, metavar=("VIEW_A", "VIEW_B"), help="with --fuse-views of kept files: the view each side was cross-validated on (its data.view_filter, e.g. ant post)")
    p.add_argument("--compare", nargs=2, metavar=("CV_A", "CV_B"), help="instead: compare two finished CV folders made on the same folds (paired); either may be a file written by --export-oof "
                   "(both files: give --data, --recipe, -o, --folds, --inner-val of their CV, whose folds and labels are rebuilt from the data), "
                   "or a comma-separated list of them, one per training seed of that recipe (-o train.seed=S keeps the folds): the CI then holds training noise too")
    p.add_argument("--ensemble", action="store_true", help="with --compare: each side's CVs (comma-separated, e.g. a recipe's seeds) averaged per image "
                   "before the AUC (an ensemble, still out of fold), instead of the mean of their AUCs")
    p.add_argument("--init-from", metavar="CV", help="a finished CV of the same data and folds: each fold's run starts from that CV's same fold's best weights "
                   "(a second stage that stays out of fold, e.g. p4-text on p4-unet's folds); with --seeds, CV/seed<S>/ when it has them")
    p.add_argument("--continue-from", metavar="CV", help="start --out from a finished CV of the same recipe without checkpoint selection (train.select_metric=last): "
                   "each fold continues CV's training where it stopped early, to train.epochs, and ships its final epoch (the same as training it from scratch)")
    p.add_argument("--reevaluate-from", metavar="CV", help="instead of training: CV's fold models evaluated again into --out under the -o eval.* overrides "
                   "(e.g. -o 'eval.tta=[identity,shift]'), each fold's threshold and temperature chosen again on its own inner validation split; then --compare --out CV")
    p.add_argument("--export-oof", nargs=2, metavar=("CV", "FILE"), help="instead: keep a finished CV's out-of-fold probabilities without its data (fold, hashed image key, probability: "
                   "no file names, patients or labels; a segmentation CV: fold, key, class, Dice of each scan with a lesion), to --compare later CVs with after the fold runs are gone")


def cmd_cv(a: argparse.Namespace) -> int:
    from ..training.crossval import compare_cv, cross_validate, format_summary
    from ..training.cv_compare import format_comparison

    if a.compare:
        sides = [side.split(",") if "," in side else side for side in a.compare]
        truth = _truth(a, sides)
        if a.ensemble:
            from ..training.cv_compare import (
                format_ensemble_comparison,
                seed_ensemble_auc,
            )

            print("\n".join(format_ensemble_comparison(seed_ensemble_auc(sides[0], against=sides[1], truth=truth))))
            return 0
        print("\n".join(format_comparison(compare_cv(*sides, truth=truth))))
        return 0
    if a.ensemble:
        raise ValueError("--ensemble goes with --compare A B")
    if a.views and not a.fuse_views:
        raise ValueError("--views goes with --fuse-views A B")
    if a.export_oof:
        from ..training.cv_compare import export_oof
        from ..training.oof import cv_task

        seg = cv_task(a.export_oof[0]) == "segmentation"
        what = "per-scan Dice (scans with a lesion; no file names, patients or masks)" if seg else "probabilities (no file names, patients or labels)"
        print(f"out-of-fold {what} of {a.export_oof[0]}: {export_oof(*a.export_oof)}")
        return 0
    if a.fuse_views:
        from ..training.cv_compare import fuse_views

        r = fuse_views(*a.fuse_views, truth_a=_truth(a, [a.fuse_views[0]], _view(a, 0)), truth_b=_truth(a, [a.fuse_views[1]], _view(a, 1)))

        def f(m):
            return f"{m['value']:.4f} [{m['ci_low']:.4f}, {m['ci_high']:.4f}]"

        print(f"{r['patients']} patients, {r['positive_patients']} with {r['truth']}: fused ({r['how']}) ROC-AUC {f(r['fused_auc'])}; "
              f"view A alone {f(r['a_auc'])}, view B alone {f(r['b_auc'])}")
        print(f"fused - A {f(r['fused_minus_a'])}; fused - B {f(r['fused_minus_b'])} (paired, patient-level bootstrap)")
        return 0
    if not a.out:
        raise ValueError("scintix cv needs --out CV_FOLDER (give the same one again to resume)")
    if a.folds < 2:
        raise ValueError(f"--folds {a.folds}: at least 2")
    if not 0 < a.inner_val < 1:
        raise ValueError(f"--inner-val {a.inner_val}: a share in (0, 1)")
    from ..config import load_config

    overrides = list(a.overrides) + ([f"data.source={json.dumps(str(Path(a.data).resolve()))}"] if a.data else []) + ([f"train.epochs={a.epochs}"] if a.epochs else [])
    if a.reevaluate_from:
        from ..training.crossval import reevaluate_cv

        print(format_summary(reevaluate_cv(a.reevaluate_from, a.out, list(a.overrides))))
        print(f"cv folder: {a.out} (the fold models of {a.reevaluate_from}, evaluated with {' '.join(a.overrides)}; pair them: scintix cv --compare {a.out} {a.reevaluate_from})")
        return 0
    if a.continue_from:
        from ..training.crossval import continue_without_selection

        pairs = [(Path(a.continue_from) / f"seed{s}", Path(a.out) / f"seed{s}") for s in a.seeds] if a.seeds else [(Path(a.continue_from), Path(a.out))]
        for ref, out in pairs:
            done = continue_without_selection(ref, out)
            print(f"folds {done or 'none (already there)'} of {ref} continue in {out} without checkpoint selection (their saved config; --recipe and -o do not apply to them)")
    if a.seeds:
        from ..training.crossval import cross_validate_seeds, format_seeds

        res = cross_validate_seeds(load_config(a.recipe, overrides), a.out, a.seeds, a.folds, a.inner_val, init_from=a.init_from,
                                   own_settings=not a.continue_from)
        print(format_seeds(res))
        print(f"cv folder: {a.out} (seed<S>/ each a CV folder; cv_seeds.json; an ensemble of every fold model)")
        return 0
    summary = cross_validate(load_config(a.recipe, overrides), a.out, a.folds, a.inner_val, init_from=a.init_from, own_settings=not a.continue_from)
    print(format_summary(summary))
    print(f"cv folder: {a.out} (cv_summary.json, {'oof_per_image.csv' if summary.get('task') == 'segmentation' else 'oof_predictions.csv'})")
    return 0


def _truth(a: argparse.Namespace, sides, extra: tuple[str, ...] = ()) -> dict | None:
    """Kept out-of-fold files alone (no CV folder among them) are scored against their folds rebuilt from --data and the recipe
    (plus ``extra`` overrides, e.g. the view of one side of a fusion)."""
    if any(Path(x).is_dir() for side in sides for x in ([side] if isinstance(side, str) else side)) or not a.data:
        return None
    from ..config import load_config
    from ..training.cv_truth import cv_truth

    cfg = load_config(a.recipe, [*a.overrides, *extra, f"data.source={json.dumps(str(Path(a.data).resolve()))}"])
    return cv_truth(cfg, a.folds, a.inner_val)


def _view(a: argparse.Namespace, side: int) -> tuple[str, ...]:
    """--views' entry for one side of --fuse-views, as an override (none without --views)."""
    return (f"data.view_filter={a.views[side]}",) if a.views else ()


def cmd_ensemble(a: argparse.Namespace) -> int:
    from ..runfolder import load_ensemble, write_ensemble

    path = write_ensemble(a.out, a.runs)
    run = load_ensemble(a.out)
    print(f"ensemble of {len(a.runs)} runs: {path}; thresholds {', '.join(f'{k} {v:.3f}' for k, v in run.thresholds.items())}")
    return 0
