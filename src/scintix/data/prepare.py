"""From a config to samples per split: records, labels, duplicates, the split, and a summary."""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..tasks import get_task
from .datasets import Sample, build_samples, view_kept
from .generated import (
    GeneratedDataError,
    attach_generated,
    is_generated,
    load_generated,
)
from .manifest import Record, encode_labels, load_data
from .splits import (
    cv_fold_split,
    find_duplicates,
    fold_to_split,
    hash_images,
    leakage_report,
    load_split,
    make_folds,
    make_split,
    save_split,
)

__all__ = ["PreparedData", "prepare_data"]

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    records: list[Record]
    classes: list[str]
    samples: dict[str, list[Sample]]
    summary: dict = field(default_factory=dict)
    synthetic: bool = False


def prepare_data(cfg, run_dir: str | Path, make_synthetic=None, write: bool = True) -> PreparedData:
    """Load records, encode labels, find duplicates, make or reuse the split, build samples.

    Writes ``split.csv`` and ``data_summary.json`` into ``run_dir``. A split
    already in ``run_dir`` (resume, evaluate) or named by ``cfg.data.split.file``
    is reused as is. Unreadable images are listed in the summary and left out.
    Without ``data.source`` the SYNTHETIC data in ``run_dir/synthetic_data``
    is used, made first by ``make_synthetic(folder, cfg.synthetic)`` (the
    caller's generator, e.g. the simulator's) when it is not there yet.
    """
    run_dir = Path(run_dir)
    d = cfg.data
    synthetic = d.source is None
    source = d.source
    if synthetic:
        data_dir = run_dir / "synthetic_data"
        source = data_dir / "manifest.csv"
        if not source.is_file():
            opts = dict(cfg.synthetic)
            opts.setdefault("seed", d.split.seed)
            if make_synthetic is None:
                raise FileNotFoundError(f"{data_dir}: no synthetic data; `scintix run` makes it (data.source is empty)")
            source = make_synthetic(data_dir, opts)
    task = get_task(d.task)
    records = load_data(source, require_label=not task.dense)
    if d.label_column:
        records = _relabel(records, d.label_column, source)
    if d.report_column != "report":  # e.g. the simulator's Chinese reports
        records = [dataclasses.replace(r, report=(r.extra.get(d.report_column) or "").strip() or None) for r in records]
    if cfg.text.view_prefix and not d.views:
        from ..text.report import model_report

        records = [dataclasses.replace(r, report=model_report(r.report, r.view, True)) for r in records]
    # generated images (GAN) never enter the split: it is made on real images, they join train afterwards
    generated = [r for r in records if is_generated(r)] + load_generated(d.generated)
    records = [r for r in records if not is_generated(r)]
    if generated and task.dense:
        raise GeneratedDataError("generated images (generated=1 / data.generated) carry no masks: segmentation trains on real scans only")
    if d.report_column != "report":
        generated = [dataclasses.replace(r, report=(r.extra.get(d.report_column) or "").strip() or None) for r in generated]
    # the run is branded SYNTHETIC by what it is evaluated on: real rows (generated rows say whether their generator learned from simulated scans)
    synthetic = synthetic or any(r.extra.get("synthetic") == "1" for r in records)
    mask_errors: list[str] = []
    if task.dense:
        if d.mask_column != "mask":  # e.g. the simulator's class-coded masks
            records = [dataclasses.replace(r, mask=(r.extra.get(d.mask_column) or "").strip() or None) for r in records]
        records, y, classes, mask_errors = _mask_labels(records, d, source)
    else:
        y, classes = encode_labels(records, d.classes, task)
    split_file = run_dir / "split.csv"
    if split_file.is_file() or d.split.file:
        assignment, hashes = load_split(split_file if split_file.is_file() else d.split.file)
        errors: list[str] = []
        known = {r.path for r in records}
        if not set(assignment) <= known:
            extra = sorted(set(assignment) - known)
            raise ValueError(f"split file lists {len(extra)} image(s) absent from the data, e.g. {extra[:2]}; it belongs to other data")
        duplicates = find_duplicates(records, hashes)
        how = f"reused {split_file if split_file.is_file() else d.split.file}"
        if not split_file.is_file() and write:  # the run folder keeps the split it used
            save_split(split_file, records, assignment, hashes)
    else:
        hashes, errors = hash_images(records)
        duplicates = find_duplicates(records, hashes)
        readable = [i for i, r in enumerate(records) if r.path in hashes]
        recs, yy = [records[i] for i in readable], y[readable]
        predefined = d.split.use_predefined and any(r.split for r in recs)
        if predefined:
            assignment = {r.path: r.split for r in recs if r.split}
            how = "predefined split column of the manifest"
            if d.split.val_from_train > 0:
                assignment, how = _carve_val(recs, yy, assignment, d, duplicates)
        elif d.split.folds >= 2 and d.split.inner_val > 0:  # cross-validation: every patient is out of fold (test) exactly once
            folds = make_folds(recs, yy, d.split.folds, d.task, test_ratio=0.0, seed=d.split.seed, duplicates=duplicates)
            save_split(run_dir / "folds.csv", recs, folds, hashes)
            assignment = cv_fold_split(recs, yy, folds, d.split.fold, d.split.inner_val, d.task, d.split.seed, duplicates)
            how = (f"{d.split.folds}-fold cross-validation by patient, stratified: fold {d.split.fold} is the out-of-fold test, "
                   f"{d.split.inner_val:.0%} of the other folds' patients are val, seed {d.split.seed}")
        elif d.split.folds >= 2:
            folds = make_folds(recs, yy, d.split.folds, d.task, test_ratio=d.split.ratios[2], seed=d.split.seed, duplicates=duplicates)
            save_split(run_dir / "folds.csv", recs, folds, hashes)
            assignment = fold_to_split(folds, d.split.fold)
            how = f"{d.split.folds}-fold by patient (fold {d.split.fold} is val), test held out {d.split.ratios[2]}, seed {d.split.seed}"
        else:
            assignment = make_split(recs, yy, d.task, tuple(d.split.ratios), d.split.seed, duplicates)
            how = f"patient-grouped, label-stratified {tuple(d.split.ratios)}, seed {d.split.seed}"
        save_split(split_file, recs, assignment, hashes)
    assignment = dict(assignment)
    train_rows = [r for r in records if assignment.get(r.path) == "train" and view_kept(r, "train", d.view_filter, d.train_extra_views)]
    n_real_train = len({r.patient_id for r in train_rows}) if d.views else len(train_rows)  # samples: patients when views are stacked
    extra = attach_generated(generated, records, assignment, d.generated_ratio, d.split.seed, n_real_train)
    if extra:
        y_gen, _ = encode_labels(extra, classes, task)
        records, y = records + extra, np.concatenate([y, y_gen])
    errors = mask_errors + list(errors)
    for e in errors:
        log.error("unreadable, left out: %s", e)
    samples = build_samples(records, y, assignment, d.views, d.view_filter, d.train_extra_views)
    by_split: dict[str, list[Sample]] = {s: [x for x in samples if x.split == s] for s in ("train", "val", "test")}
    if d.train_max_labels is not None:
        if not task.multilabel:
            raise ValueError(f"data.train_max_labels={d.train_max_labels}: for multi-label tasks (data.task=multilabel)")
        # "normal" counts as no finding: a scan is single-feature when it holds at most this many labels other than a normal class
        normal = [i for i, c in enumerate(classes) if c.lower() == "normal"]
        by_split["train"] = [x for x in by_split["train"] if int(np.delete(np.asarray(x.target), normal).sum()) <= d.train_max_labels]
    summary = _summary(records, classes, by_split, duplicates, leakage_report(records, assignment, hashes), errors, how, task)
    summary["synthetic"] = synthetic
    summary["source"] = str(source)
    if extra:  # the model card says how many training images were generated, and by what
        gen_paths = {r.path for r in extra}
        n_gen = sum(1 for smp in by_split["train"] if smp.paths[0] in gen_paths)
        summary["generated"] = {"train_images": n_gen, "real_train_images": len(by_split["train"]) - n_gen,
                                "generator_runs": sorted({r.extra.get("generator_run", "") for r in extra}),
                                "class_counts": {c: int(n) for c, n in Counter(r.label for r in extra).items()}}
    if write:  # False: another process (rank 0 of a distributed run) writes it
        (run_dir / "data_summary.json").write_text(json.dumps(summary, indent=2))
    return PreparedData(records, classes, by_split, summary, synthetic)


def _carve_val(recs, yy, assignment: dict[str, str], d, duplicates) -> tuple[dict[str, str], str]:
    """A patient-grouped, stratified share of the predefined train becomes val; the predefined val becomes ``predefined_val_as``."""
    if d.split.predefined_val_as not in ("val", "test"):
        raise ValueError(f"data.split.predefined_val_as must be val or test, got {d.split.predefined_val_as!r}")
    train = [i for i, r in enumerate(recs) if assignment.get(r.path) == "train"]
    inner = make_split([recs[i] for i in train], yy[train], d.task, (1 - d.split.val_from_train, d.split.val_from_train, 0.0), d.split.seed, duplicates)
    out = {p: (d.split.predefined_val_as if s == "val" else s) for p, s in assignment.items()}
    out.update(inner)
    how = (f"predefined split column; {d.split.val_from_train:.0%} of its train patients (grouped, stratified, seed {d.split.seed}) "
           f"held out as val for selection; its val used as {d.split.predefined_val_as}")
    return out, how


def _mask_labels(records: list[Record], d, source) -> tuple[list[Record], np.ndarray, list[str], list[str]]:
    """Segmentation: classes and a per-scan "has foreground" label (for stratified splits) from each mask."""
    from .io import ImageReadError
    from .masks import read_mask

    if d.classes is not None:
        classes = list(d.classes)
    elif d.mask_mode == "binary":
        classes = ["background", "lesion"]
    else:
        raise ValueError("data.mask_mode=values needs data.classes (background first), e.g. [background, metastasis, arthritis]")
    if d.mask_mode == "binary" and len(classes) != 2:
        raise ValueError(f"data.mask_mode=binary gives 2 classes (background, lesion), data.classes has {classes}")
    no_mask = [r.path for r in records if not r.mask]
    if len(no_mask) == len(records):
        raise ValueError(f"{source}: data.task=segmentation needs masks; no row has one in column {d.mask_column!r} (data.mask_column)")
    kept, y, errors = [], [], [f"{p}: no mask (the manifest's mask column is empty)" for p in no_mask]
    for r in records:
        if not r.mask:
            continue
        try:
            y.append(int(read_mask(r.mask, d.mask_mode, len(classes)).any()))
            kept.append(r)
        except ImageReadError as exc:
            errors.append(str(exc))
    return kept, np.asarray(y, dtype=np.int64), classes, errors


def _relabel(records: list[Record], column: str, source) -> list[Record]:
    missing = [r.path for r in records if not (r.extra.get(column) or "").strip()]
    if missing:
        raise ValueError(f"{source}: data.label_column={column!r} is empty or absent for {len(missing)} row(s), e.g. {missing[:2]}")
    return [dataclasses.replace(r, label=r.extra[column].strip()) for r in records]


def _summary(records, classes, by_split, duplicates, leakage, errors, how, task) -> dict:
    per_split = {}
    for name, samples in by_split.items():
        t = np.stack([s.target for s in samples]) if samples else np.zeros((0,))
        if task.dense:
            counts = {"with foreground": int(t.sum()), "without": int(len(t) - t.sum())}
        elif task.multilabel:
            counts = {c: int(t[:, i].sum()) if len(t) else 0 for i, c in enumerate(classes)}
        else:
            counter = Counter(int(v) for v in t.ravel())
            counts = {c: counter.get(i, 0) for i, c in enumerate(classes)}
        per_split[name] = {"samples": len(samples), "patients": len({s.patient_id for s in samples}), "class_counts": counts}
    return {
        "images": len(records),
        "patients": len({r.patient_id for r in records}),
        "classes": classes,
        "split_method": how,
        "splits": per_split,
        "duplicate_groups": [g.as_dict() for g in duplicates],
        "duplicate_conflicting_labels": sum(g.conflicting for g in duplicates),
        "leakage": leakage,
        "unreadable": errors,
    }
