"""``evaluate_run``: a run's best checkpoint on its evaluation splits, everything chosen on validation.

Writes ``eval/``: ``thresholds.json`` (chosen on val), ``calibration.json``,
``health.json`` (degenerate-model checks, how the checkpoint was selected),
``metrics_table.txt`` and per split ``metrics.json`` plus, for
classification, ``predictions.csv`` and ROC/PR/confusion/reliability PNGs;
for segmentation, ``per_image.csv``, ``masks/`` (one predicted label PNG
per image) and ``gallery/`` (overlays of the best and worst cases and of
false positives on lesion-free scans). The report renders these files.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader

from ..checkpoint import load_checkpoint, load_model_state
from ..data.prepare import PreparedData, prepare_data
from ..evaluation import calibration, report
from ..evaluation.card import write_model_card
from ..evaluation.health import assess_model, health_banner
from ..runfolder import build_model_for_run, load_run_config, with_tta
from ..runtime import autocast, resolve_device, resolve_precision
from ..tasks import get_task
from .batchnorm import has_batchnorm, train_eval_gap
from .data import build_datasets, training_like_batches
from .loop import predict
from .text_conditions import (
    cut_by_report,
    format_conditions,
    in_dataset_order,
    predict_without_reports,
    text_conditions,
)

__all__ = ["evaluate_run", "classification_outputs", "segmentation_outputs"]

log = logging.getLogger(__name__)


def evaluate_run(run_dir: str | Path, data: PreparedData | None = None, datasets: dict | None = None, checkpoint: str = "best",
                 figures: bool | None = None) -> dict:
    """Evaluate a run's best checkpoint: threshold on val, metrics + CIs on each eval split; returns ``{split: metrics}``.
    ``figures``: write (True) or skip (False) the PNG figures this time, whatever the run's ``eval.figures``."""
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if figures is not None:
        cfg = replace(cfg, eval=replace(cfg.eval, figures=figures))
    task = get_task(cfg.data.task)
    if data is None:
        data = prepare_data(cfg, run_dir)
    if datasets is None:
        datasets = build_datasets(replace(cfg, augment=replace(cfg.augment, enabled=False)), data)
    device = resolve_device(cfg.train.device)
    amp = resolve_precision(cfg.train.precision, device)
    model = build_model_for_run(cfg, len(data.classes), run_dir=run_dir, pretrained=False)
    ck_path = run_dir / "checkpoints" / f"{checkpoint}.pt"
    ck = load_checkpoint(ck_path)
    load_model_state(model, ck["model"], ck_path)
    model = with_tta(model, cfg, task)
    model.to(device)
    preds = {}
    for split in dict.fromkeys(("val", *cfg.eval.splits)):
        ds = datasets.get(split)
        if ds is None or len(ds) == 0:
            continue
        out = predict(model, DataLoader(ds, batch_size=cfg.train.batch_size), device, task, amp)
        targets = (ds.masks[:, 0] if task.dense else ds.targets)[out["index"]]
        preds[split] = (out["probs"] if task.dense else out["logits"], targets, [ds.samples[i] for i in out["index"]], ds, out["index"])
    if "val" not in preds:
        raise ValueError(f"{run_dir}: no validation predictions; the threshold must come from validation data")
    eval_dir = run_dir / "eval"
    eval_dir.mkdir(exist_ok=True)
    if task.dense:
        return _evaluate_segmentation(run_dir, cfg, task, model, data, datasets, preds, ck, device, amp)
    return _evaluate_classification(run_dir, cfg, task, model, data, datasets, preds, ck, device, amp)


def _evaluate_classification(run_dir, cfg, task, model, data, datasets, preds, ck, device, amp) -> dict:
    classes, ecfg, eval_dir = data.classes, cfg.eval, run_dir / "eval"
    fit = calibration.calibrate_temperature(preds["val"][0], preds["val"][1], task) if ecfg.calibrate else calibration.TemperatureFit(1.0, "disabled")
    temperature = fit.temperature
    if not fit.fitted and ecfg.calibrate:
        log.warning("%s: %s", run_dir, fit.describe())
    calib = {**fit.to_dict(), "fitted_on": "val", "method": "temperature scaling (NLL)" if ecfg.calibrate else "none", "ece": {}}
    raw, probs_by = {}, {}
    for split, (logits, targets, samples, _, _) in preds.items():
        raw[split] = calibration.apply_temperature(logits, 1.0, task)
        probs_by[split] = calibration.apply_temperature(logits, temperature, task)
        calib["ece"][split] = {"raw": calibration.expected_calibration_error(raw[split], targets, task), "calibrated": calibration.expected_calibration_error(probs_by[split], targets, task)}
    report.save_json(eval_dir / "calibration.json", calib)
    thresholds = task.choose_thresholds(probs_by["val"], preds["val"][1], classes, ecfg)
    report.save_json(eval_dir / "thresholds.json", {"thresholds": thresholds, "method": ecfg.threshold, "target_specificity": ecfg.target_specificity, "chosen_on": "val"})
    health = _assess(run_dir, cfg, task, model, datasets.get("train"), raw["val"], preds["val"][1], thresholds, classes, ck, device, amp)
    report.save_json(eval_dir / "health.json", health)
    results = {}
    for split, (_, targets, samples, _, _) in preds.items():
        if split not in ecfg.splits:
            continue
        probs = probs_by[split]
        res = task.evaluate(probs, targets, [s.patient_id for s in samples], thresholds, classes, ecfg, seed=cfg.train.seed)
        res.update(split=split, synthetic=data.synthetic, threshold_method=f"{ecfg.threshold} on val", ci=f"{ecfg.ci_level:.0%} patient-level bootstrap, {ecfg.n_bootstrap} replicates")
        d = eval_dir / split
        tag = classification_outputs(d, split, samples, probs, targets, thresholds, task, classes, data.synthetic, ecfg.figures)
        if ecfg.figures:
            calibration.plot_reliability(d / "reliability.png", raw[split], probs, targets, task, f"calibration, {split}{tag} ({'T = ' + format(temperature, '.2f') + ', fitted on val' if fit.fitted else 'not fitted: raw'})")
        res["calibration"] = {"temperature": temperature, "status": fit.status, "summary": fit.describe(), **calib["ece"][split]}
        res["health"] = {"degenerate": health["degenerate"], "flags": [f["message"] for f in health["flags"]]}
        report.save_json(d / "metrics.json", res)
        results[split] = res
    _write_table(eval_dir, report.format_table(results, data.synthetic), data.synthetic, health, f"calibration: {fit.describe()}")
    write_model_card(run_dir)
    return results


def classification_outputs(d: Path, title: str, samples, probs, targets, thresholds, task, classes, synthetic: bool, figures: bool = True) -> str:
    """``predictions.csv`` and (``figures``) the ROC / confusion / PR plots of one evaluated split into ``d``; returns the
    plots' SYNTHETIC tag."""
    d.mkdir(parents=True, exist_ok=True)
    report.write_predictions(d / "predictions.csv", samples, probs, thresholds, task, classes)
    tag = " (SYNTHETIC)" if synthetic else ""
    if not figures:
        return tag
    report.plot_roc(d / "roc.png", probs, targets, task, classes, f"ROC, {title}{tag}")
    report.plot_confusion(d / "confusion.png", probs, targets, thresholds, task, classes, f"{title}{tag}")
    report.plot_pr(d / "pr.png", probs, targets, task, classes, f"precision-recall, {title}{tag}")
    return tag


def segmentation_outputs(d: Path, model, ds, index, probs, masks, samples, thresholds, classes, task, cfg, synthetic: bool, device, amp,
                         thresholds_no_report: dict | None = None, probs_no_report: np.ndarray | None = None) -> dict:
    """One evaluated split of a segmenter: its metrics (returned), ``per_image.csv``, masks and gallery in ``d``, and, for a
    model that reads reports, the Dice with its report, none (cut at ``thresholds_no_report``) and another patient's
    (``text_conditions``)."""
    from ..evaluation.seg_outputs import write_seg_outputs

    reads_text = "text" in getattr(model, "inputs", ())
    # each scan cut as `predict` would cut it: a scan without a report at the no-report thresholds
    cut = cut_by_report([s.text for s in samples], thresholds, thresholds_no_report) if reads_text else thresholds
    rows = task.per_image(probs, masks, cut, classes)
    res = task.evaluate(probs, masks, [s.patient_id for s in samples], cut, classes, cfg.eval, seed=cfg.train.seed, rows=rows)
    if reads_text and thresholds_no_report is not None:
        without = sum(not s.text for s in samples)
        res["thresholds"] = cut if isinstance(cut, dict) else dict(thresholds)  # {class: value} as for any run; the rule below
        res["threshold_cut"] = {"with_report": thresholds, "no_report": thresholds_no_report, "scans_without_report": without}
    write_seg_outputs(d, samples, ds.images[index], masks, task.masks(probs, cut, classes), rows, classes, synthetic, figures=cfg.eval.figures)
    if reads_text:
        res["text_conditions"] = text_conditions(model, ds, task, thresholds, classes, device, amp, cfg, cfg.train.batch_size, in_dataset_order(probs, index), cfg.train.seed,
                                                 thresholds_no_report, probs_no_report, out_file=d / "text_conditions.csv")
    return res


def _evaluate_segmentation(run_dir, cfg, task, model, data, datasets, preds, ck, device, amp) -> dict:
    from ..evaluation.seg_outputs import format_seg_table

    classes, ecfg, eval_dir = data.classes, cfg.eval, run_dir / "eval"
    report.save_json(eval_dir / "calibration.json", {"temperature": 1.0, "status": "not_applicable", "fitted": False, "summary": "not calibrated (segmentation: per-pixel softmax, threshold chosen on validation)", "ece": {}})
    val_probs, val_masks = preds["val"][0], preds["val"][1]
    thresholds = task.choose_thresholds(val_probs, val_masks, classes, ecfg)
    chosen = {"thresholds": thresholds, "method": "pooled Dice on val" if val_probs.shape[1] == 2 and ecfg.threshold != "fixed" else ecfg.threshold, "chosen_on": "val"}
    no_report, val_no_report = None, None
    if "text" in getattr(model, "inputs", ()):
        # the image path alone is cut where it does best: a report-guided model is more confident with a report than without,
        # and the with-report threshold can erase every lesion of a scan that comes without one (predict uses these then)
        vds = preds["val"][3]
        val_no_report = predict_without_reports(model, vds, task, device, amp, cfg.train.batch_size)
        no_report = task.choose_thresholds(val_no_report, vds.masks[:, 0], classes, ecfg)
        chosen.update(thresholds_no_report=no_report, no_report_chosen_on="val, every report withheld")
    report.save_json(eval_dir / "thresholds.json", chosen)
    health = _assess(run_dir, cfg, task, model, datasets.get("train"), None, None, thresholds, classes, ck, device, amp)
    report.save_json(eval_dir / "health.json", health)
    results, text_lines = {}, []
    for split, (probs, masks, samples, ds, index) in preds.items():
        if split not in ecfg.splits:
            continue
        res = segmentation_outputs(eval_dir / split, model, ds, index, probs, masks, samples, thresholds, classes, task, cfg, data.synthetic, device, amp,
                                   no_report, val_no_report if split == "val" else None)
        res.update(split=split, synthetic=data.synthetic, threshold_method=f"{ecfg.threshold} on val", ci=f"{ecfg.ci_level:.0%} patient-level bootstrap, {ecfg.n_bootstrap} replicates")
        res["health"] = {"degenerate": health["degenerate"], "flags": [f["message"] for f in health["flags"]]}
        if "text_conditions" in res:
            text_lines.append(f"{split}:\n" + format_conditions(res["text_conditions"]))
        report.save_json(eval_dir / split / "metrics.json", res)
        results[split] = res
    table = format_seg_table(results, data.synthetic)
    if text_lines:
        table += "\nthe report's weight (thresholds from val: with true reports, and with none for the no-report condition; another patient's report: a seeded shuffle)\n" + "\n".join(text_lines)
    _write_table(eval_dir, table, data.synthetic, health, "")
    write_model_card(run_dir)
    return results


def _write_table(eval_dir: Path, table: str, synthetic: bool, health: dict, calibration_line: str) -> None:
    lines = table.split("\n")
    lines.insert(1 if synthetic else 0, health_banner(health))  # the SYNTHETIC line stays first
    (eval_dir / "metrics_table.txt").write_text("\n".join(filter(None, [*lines, calibration_line, _selection_line(health)])) + "\n")


def _assess(run_dir: Path, cfg, task, model, train_ds, val_probs_raw, val_targets, thresholds, classes, ck: dict, device, amp) -> dict:
    """eval/health.json: degenerate-model checks, the train/eval-mode gap and how the checkpoint was selected."""
    gap, gap_images = None, 0
    if train_ds is not None and len(train_ds) and has_batchnorm(model):
        # batches drawn as in training (the balanced sampler's mix, if used), not augmented: train mode then
        # normalises exactly as the model learned to, and eval mode should agree
        gaps, sizes = [], []
        for batch in training_like_batches(train_ds, cfg, 0, 64):
            extra = {k: batch[k].to(device) for k in getattr(model, "inputs", ("image",))[1:] if k in batch}
            with autocast(device, amp):
                gaps.append(train_eval_gap(model, batch["image"].to(device), task.activation, **extra))
            sizes.append(len(batch["image"]))
        gap, gap_images = float(np.average(gaps, weights=sizes)), int(sum(sizes))
    history = []
    if (run_dir / "history.csv").is_file():
        with open(run_dir / "history.csv") as fh:
            history = list(csv.DictReader(fh))
    selection = ck.get("selection") or {"epoch": ck.get("epoch"), "criterion": cfg.train.select_metric}
    health = assess_model(val_probs_raw, val_targets, task, classes, task.columns(len(classes)), thresholds, history, selection.get("epoch"), gap)
    health["selection"] = selection
    health["train_eval_gap_images"] = gap_images
    if health["degenerate"]:
        log.warning("%s", health_banner(health))
    return health


def _selection_line(health: dict) -> str:
    s = health.get("selection") or {}
    if s.get("epoch") is None:
        return ""
    metrics = "".join(f", {k.replace('_', ' ')} {v:.4f}" for k, v in s.items() if k.startswith("val_") and isinstance(v, float))
    guard = f" among epochs with val loss <= {s['max_loss_ratio']}x the lowest" if s.get("max_loss_ratio") else ""
    return f"selected epoch {s['epoch']} by validation {s.get('criterion')}{guard}{metrics}"
