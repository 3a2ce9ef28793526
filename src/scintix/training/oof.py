"""A cross-validation folder's out-of-fold predictions: its fold runs, their task, and every fold's test predictions.

The lowest layer of ``scintix cv``: :mod:`.crossval` (running and summarising
a CV) and :mod:`.cv_compare` (comparing, combining and exporting CVs) both
read CV folders through it.
"""

from __future__ import annotations

import csv
import hashlib
import os
from pathlib import Path

import numpy as np

__all__ = ["fold_sd", "seed_dirs", "fold_dirs", "cv_task", "oof_predictions", "oof_segmentation", "binary_oof", "image_keys"]


def seed_dirs(path: str | Path) -> list[Path]:
    """A :func:`~scintix.training.crossval.cross_validate_seeds` folder's CV folders (``seed<S>/``, by seed); ``[path]`` for anything else."""
    path = Path(path)
    found = sorted((d for d in path.glob("seed*") if d.is_dir() and d.name[4:].isdigit()), key=lambda d: int(d.name[4:])) if path.is_dir() else []
    return found or [path]


def fold_dirs(out_dir: Path) -> list[Path]:
    """A CV folder's fold runs (``fold0/`` ...), by fold; a one-line error when there are none."""
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

    cfg = fold_dirs(Path(out_dir))[0] / "config.yaml"
    return yaml.safe_load(cfg.read_text())["data"].get("task", "binary") if cfg.is_file() else "binary"


def _fold_tables(out_dir: Path, name: str):
    """``(fold, rows)`` of each fold run's ``eval/test/<name>``, checking that every fold run used the same fold assignment."""
    folds_file = None
    for d in fold_dirs(out_dir):
        table = d / "eval" / "test" / name
        if not table.is_file():
            raise FileNotFoundError(f"{d}: not evaluated yet (no eval/test/{name}); run `scintix cv` again to finish it")
        text = (d / "folds.csv").read_text() if (d / "folds.csv").is_file() else None
        if folds_file is not None and text != folds_file:
            raise ValueError(f"{d}: its fold assignment differs from the other folds' (different data or split seed)")
        folds_file = text
        with open(table, newline="", encoding="utf-8") as fh:
            yield int(d.name[4:]), list(csv.DictReader(fh))


def oof_predictions(out_dir: str | Path) -> tuple[list[dict], str]:
    """Every fold's test predictions (the out-of-fold ones), with the fold, and the positive class's name.

    Binary: ``prob`` is the positive class's probability. Multi-class and multi-label: each row has every class's
    ``prob_<class>`` instead, and the positive class is ``""``. Segmentation: see :func:`oof_segmentation`.
    """
    out_dir = Path(out_dir)
    task = cv_task(out_dir)
    if task == "segmentation":
        raise ValueError(f"{out_dir}: a segmentation CV; its out-of-fold results are per-image Dice (oof_segmentation), not probabilities")
    rows, positive = [], None
    for fold, table in _fold_tables(out_dir, "predictions.csv"):
        for r in table:
            probs = [k for k in r if k.startswith("prob_")]
            row = {"fold": fold, "path": r["path"], "patient_id": r["patient_id"], "target": r["target"], "predicted": r["predicted"]}
            if task != "binary":
                row.update({k: float(r[k]) for k in probs})
            else:
                positive = positive or probs[-1][5:]
                row["prob"] = float(r[f"prob_{positive}"])
            rows.append(row)
    return rows, positive or ""


SEG_FIELDS = ("dice", "iou", "hd95", "truth_pixels", "pred_pixels", "true_lesions", "detected_lesions", "false_positive_lesions", "false_positive_scan")


def oof_segmentation(out_dir: str | Path) -> list[dict]:
    """A segmentation CV's out-of-fold results: every fold's ``per_image.csv`` rows (one per image and foreground class,
    each cut at its fold's own validation threshold), with the fold; undefined metrics (Dice of a lesion-free scan) NaN."""
    return [{"fold": fold, "path": r["path"], "patient_id": r["patient_id"], "class": r["class"],
             **{k: float(r[k]) if r.get(k, "") != "" else float("nan") for k in SEG_FIELDS}}
            for fold, table in _fold_tables(Path(out_dir), "per_image.csv") for r in table]


def binary_oof(out_dir, what: str) -> tuple[list[dict], str]:
    """:func:`oof_predictions` of a binary CV; a one-line refusal for the others (``what`` pools one positive class)."""
    if cv_task(out_dir) == "segmentation":
        raise ValueError(f"{out_dir}: a segmentation CV; {what} pools one positive class's probabilities (binary tasks only); its summary has each class's pooled Dice")
    rows, positive = oof_predictions(out_dir)
    if not positive:
        raise ValueError(f"{out_dir}: a {cv_task(out_dir)} CV; {what} pools one positive class's probabilities (binary tasks only); its summary has each class's pooled AUC")
    return rows, positive


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


def fold_sd(values) -> float:
    """The sample sd (ddof=1) over the folds whose value is defined; NaN (null in JSON) when fewer than two are.

    Not 0.0: one defined fold says nothing about the scatter, and a 0.0 would read as perfectly stable folds."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
