"""``evaluate_external``: a trained run on patients it has never seen (a new site, a later cohort), nothing chosen on them.

Every readable row of the data is a test image. The run's checkpoint, its
validation threshold(s) and its calibration temperature are applied as they
are, so the figures answer "how does this model, as it was shipped, do on new
patients" (the question the held-out quarter of BS-80K answered for P1).
Refused, in one line, when an image is pixel-identical to one of the run's
training or validation images, or a patient id is in both: a set that shares
patients with the model's own data is not external. (The run's *test*
patients are allowed: the model never trained or chose anything on them.)

Writes into ``out_dir``: ``split.csv`` (every image "test"), ``data_summary.json``,
``test/metrics.json`` and ``metrics_table.txt``; for classification
``test/predictions.csv`` and the ROC/PR/confusion/reliability plots, for
segmentation ``test/per_image.csv``, ``masks/``, ``gallery/`` and, for a model
that reads reports, the Dice with its report, none and another patient's.
"""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

from torch.utils.data import DataLoader

from ..data.manifest import load_data
from ..data.prepare import prepare_data
from ..data.splits import hash_images, save_split
from ..evaluation import report
from ..runfolder import ENSEMBLE_FILE, final_stage, load_run, read_json
from .data import build_datasets
from .evaluate import classification_outputs, segmentation_outputs
from .loop import predict
from .text_conditions import format_conditions

__all__ = ["evaluate_external", "ExternalDataError"]


class ExternalDataError(ValueError):
    """The data shares images or patients with the run's training/validation split."""


def _seen(run_dir: Path) -> tuple[set[str], set[str]]:
    """Patient ids and pixel hashes of the images the run (every member, for an ensemble) trained or selected on."""
    members = [Path(m) for m in read_json(run_dir / ENSEMBLE_FILE)["members"]] if (run_dir / ENSEMBLE_FILE).is_file() else [run_dir]
    patients: set[str] = set()
    hashes: set[str] = set()
    for m in members:
        split = final_stage(m) / "split.csv"
        if not split.is_file():
            raise FileNotFoundError(f"{split}: the run's split is missing; without it the data cannot be checked against the run's patients")
        with open(split, newline="", encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                if row.get("split") in ("train", "val"):
                    patients.add(row.get("patient_id") or "")
                    if row.get("pixel_hash"):
                        hashes.add(row["pixel_hash"])
    patients.discard("")
    return patients, hashes


def evaluate_external(run_dir: str | Path, source: str | Path, out_dir: str | Path, batch_size: int | None = None, figures: bool | None = None) -> dict:
    """The run's model on every image of ``source`` at its own validation thresholds; returns the test metrics (see module doc).

    Raises:
        ExternalDataError: an image or a patient of ``source`` is in the run's training or validation split.
        ValueError: the data's classes differ from the run's.
    """
    run = load_run(run_dir)
    run_dir, out_dir = run.run_dir, Path(out_dir)
    cfg, task = run.cfg, run.task
    records = load_data(source, require_label=not task.dense)
    hashes, errors = hash_images(records)
    patients, seen_hashes = _seen(run_dir)
    shared_patients = sorted({r.patient_id for r in records} & patients)
    shared_images = sorted(p for p, h in hashes.items() if h in seen_hashes)
    if shared_patients or shared_images:
        what = (f"{len(shared_patients)} patient id(s) (e.g. {shared_patients[0]})" if shared_patients else "") + \
               (" and " if shared_patients and shared_images else "") + (f"{len(shared_images)} image(s) (e.g. {shared_images[0]})" if shared_images else "")
        raise ExternalDataError(f"{source}: {what} also in {run_dir}'s training/validation split; an external test set holds new patients only")
    out_dir.mkdir(parents=True, exist_ok=True)
    save_split(out_dir / "split.csv", records, {r.path: "test" for r in records if r.path in hashes}, hashes)
    split_cfg = replace(cfg.data.split, file=None, use_predefined=False, folds=0, inner_val=0.0)
    ext = replace(cfg, data=replace(cfg.data, source=str(source), split=split_cfg, generated=(), generated_ratio=0.0, train_max_labels=None))
    data = prepare_data(ext, out_dir)
    if data.classes != run.classes:
        raise ValueError(f"{source}: classes {data.classes} differ from the run's {run.classes}; name them in the manifest as the run did")
    ds = build_datasets(replace(ext, augment=replace(ext.augment, enabled=False)), data)["test"]
    if not len(ds):
        raise ValueError(f"{source}: no readable image ({len(errors)} unreadable)")
    out = predict(run.model, DataLoader(ds, batch_size=batch_size or cfg.train.batch_size), run.device, task, run.amp, temperature=run.temperature)
    index, probs = out["index"], out["probs"]
    samples = [ds.samples[i] for i in index]
    targets = (ds.masks[:, 0] if task.dense else ds.targets)[index]
    if figures is not None:  # this evaluation's figures, whatever the run's eval.figures
        cfg = replace(cfg, eval=replace(cfg.eval, figures=figures))
    ecfg = cfg.eval
    d = out_dir / "test"
    if task.dense:
        from ..evaluation.seg_outputs import format_seg_table

        res = segmentation_outputs(d, run.model, ds, index, probs, targets, samples, run.thresholds, run.classes, task, cfg, data.synthetic, run.device, run.amp,
                                   run.thresholds_no_report)
        table = format_seg_table({"external": res}, data.synthetic)
        if "text_conditions" in res:
            table += "\nthe report's weight (the run's thresholds: with reports, and without for the no-report condition; another patient's report: a seeded shuffle)\n" + format_conditions(res["text_conditions"])
    else:
        res = task.evaluate(probs, targets, [s.patient_id for s in samples], run.thresholds, run.classes, ecfg, seed=cfg.train.seed)
        classification_outputs(d, "external", samples, probs, targets, run.thresholds, task, run.classes, data.synthetic, ecfg.figures)
        table = report.format_table({"external": res}, data.synthetic)
    res.update(split="external", run=str(run_dir), data=str(source), synthetic=data.synthetic, unreadable=errors,
               threshold_method=f"the run's own ({run_dir / 'eval' / 'thresholds.json'}), not chosen on these images",
               calibration={"temperature": run.temperature, "fitted_on": "the run's validation split"},
               ci=f"{ecfg.ci_level:.0%} patient-level bootstrap, {ecfg.n_bootstrap} replicates")
    report.save_json(d / "metrics.json", res)
    (out_dir / "metrics_table.txt").write_text(table + f"\nmodel: {run_dir}; thresholds {json.dumps(run.thresholds)}{f' (without a report {json.dumps(run.thresholds_no_report)})' if run.thresholds_no_report else ''} and temperature {run.temperature:.3f} from its validation split\n")
    return res
