"""A short model card per run (``RUN/model_card.md``), generated from what the run saved."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

__all__ = ["write_model_card"]

KEY_METRICS = ("roc_auc", "accuracy", "recall", "specificity", "precision", "f1")
SEG_KEY_METRICS = ("dice", "iou", "global_dice", "hd95", "lesion_sensitivity", "false_positive_lesions_per_image", "false_positive_scan_rate")


def _ci(m: dict | None) -> str:
    if not m or m.get("value") is None:
        return "n/a"
    if m.get("ci_low") is None:
        return f"{m['value']:.3f}"
    return f"{m['value']:.3f} [{m['ci_low']:.3f}, {m['ci_high']:.3f}]"


def _epochs(run_dir: Path) -> int:
    hist = run_dir / "history.csv"
    return max(0, len(hist.read_text().strip().splitlines()) - 1) if hist.is_file() else 0


def _selection(health: dict, cfg: dict) -> str:
    s = health.get("selection") or {}
    criterion = s.get("criterion") or cfg["train"].get("select_metric", "roc_auc")
    text = "no checkpoint selection: the final epoch's weights" if criterion == "last" else f"checkpoint selected by validation {criterion}"
    if s.get("epoch") is not None:
        text += f" at epoch {s['epoch']}"
    vals = [f"{k.replace('_', ' ')} {v:.4f}" for k, v in s.items() if k.startswith("val_") and isinstance(v, float)]
    if vals:
        text += f" ({', '.join(vals)})"
    if s.get("precise_bn_batches"):
        text += f"; BatchNorm statistics recomputed on {s['precise_bn_batches']} training batches drawn as in training, without augmentation"
    return text


def _text_path(run_dir: Path, cfg: dict) -> list[str]:
    """A text-guided model: what it reads and how (nothing for image-only models)."""
    tok = run_dir / "tokenizer.json"
    if not tok.is_file():
        return []
    t = json.loads(tok.read_text(encoding="utf-8"))
    txt, col = cfg.get("text", {}), cfg["data"].get("report_column", "report")
    what = (f"a local Hugging Face model ({t.get('folder')})" if t.get("type") == "hf"
            else f"a {t.get('kind')}-level tokenizer ({len(t.get('vocab', []))} tokens, built from the training reports) and a text encoder trained from scratch")
    return [f"Reads the report (manifest column `{col}`) through {what}; reports withheld from {txt.get('report_dropout', 0):.0%} of training scans, "
            "so it also runs without one (its image path)."]


def write_model_card(run_dir: str | Path) -> Path:
    """Write and return ``model_card.md``: intended use, data, metrics with CIs, limitations."""
    run_dir = Path(run_dir)
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    summary = json.loads((run_dir / "data_summary.json").read_text())
    meta = json.loads((run_dir / "meta.json").read_text()) if (run_dir / "meta.json").is_file() else {}
    eval_dir = run_dir / "eval"
    synthetic = bool(summary.get("synthetic"))
    d, m = cfg["data"], cfg["model"]
    health = json.loads((eval_dir / "health.json").read_text()) if (eval_dir / "health.json").is_file() else {}
    lines = [f"# Model card: {cfg.get('name', run_dir.name)}", ""]
    if synthetic:
        lines += ["**SYNTHETIC: trained and tested on simulated data. Not for use on patients; its numbers say nothing about real scans.**", ""]
    if health.get("degenerate"):
        lines += ["**MODEL CHECK FAILED: do not use this model.**", ""] + [f"- {f['message']}" for f in health["flags"]] + [""]
    lines += [
        "## Intended use",
        f"{(cfg.get('description') or ('Lesion segmentation' if d['task'] == 'segmentation' else 'Image classification')).rstrip('.')}. Task: {d['task']} over classes {', '.join(summary.get('classes', []))}.",
        "A research tool to support, not replace, a physician reading the scan. Not a medical device; not validated for clinical use.",
        "",
        "## Model",
        f"{m['name']}" + (f", initialised from {m['weights']}" if m.get("weights") else ", trained from scratch") + f"; input {d['image_size'][0]}x{d['image_size'][1]}"
        + (f", views {d['views']} as channels" if d.get("views") else "") + (f", CT windows {d['windows']}" if d.get("windows") else "") + f", intensity normalisation {d['normalize']}.",
        f"Trained {_epochs(run_dir)} epoch(s) on {meta.get('device', '?')}; seed {cfg['train']['seed']}; {_selection(health, cfg)}.",
        *_text_path(run_dir, cfg),
        "",
        "## Data",
        f"{summary.get('images')} images of {summary.get('patients')} patients from `{summary.get('source')}`; split {summary.get('split_method')}.",
    ]
    for s, v in summary.get("splits", {}).items():
        lines.append(f"- {s}: {v.get('samples')} samples, {v.get('patients')} patients, classes {v.get('class_counts')}")
    gen = summary.get("generated")
    if gen:
        lines.append(f"- generated: {gen['train_images']} of the {gen['train_images'] + gen['real_train_images']} training images were made by a GAN "
                     f"({', '.join(gen['generator_runs'])}; per class {gen['class_counts']}), trained on this split's training patients only; "
                     "validation and test images are all real")
    if d.get("train_extra_views"):
        lines.append(f"- training also used the training patients' {', '.join(d['train_extra_views'])} images, each with its own label; "
                     f"validation and test are {d.get('view_filter')} images only")
    aug = cfg.get("augment", {})
    if (copies := aug.get("offline_copies")):
        lines.append(f"- augmented dataset: {copies} fixed geometric copies of every training image were added (augment.offline_copies)")
    ops = [f"{k} {aug[k]}" for k in ("noise", "blur", "contrast", "gamma") if aug.get(k)]
    if aug.get("enabled", True) and ops and aug.get("intensity_prob"):
        lines.append(f"- intensity augmentation (nnU-Net's): {', '.join(ops)}, each on a share {aug['intensity_prob']} of the training images")
    if cfg["train"].get("ema"):
        lines.append(f"- weights: an exponential moving average of the training weights (decay {cfg['train']['ema']} per step), as validated and selected")
    leak = summary.get("leakage", {})
    lines += [f"- duplicates: {len(summary.get('duplicate_groups', []))} exact-duplicate group(s); patients in several splits: {len(leak.get('patients_in_several_splits', []))}", ""]
    lines += ["## Performance (95% CI, patient-level bootstrap)"]
    thr = json.loads((eval_dir / "thresholds.json").read_text()) if (eval_dir / "thresholds.json").is_file() else {}
    if thr:
        lines.append(f"Thresholds chosen on validation ({thr.get('method')}): {', '.join(f'{k} {v:.3f}' for k, v in thr['thresholds'].items())}.")
        if thr.get("thresholds_no_report"):
            lines.append(f"For a scan given without a report (the image path alone), chosen on validation with every report withheld: "
                         f"{', '.join(f'{k} {v:.3f}' for k, v in thr['thresholds_no_report'].items())}.")
    for s in ("val", "test"):
        f = eval_dir / s / "metrics.json"
        if not f.is_file():
            continue
        res = json.loads(f.read_text())
        lines.append(f"- **{s}** ({res.get('n')} samples):")
        for cls, met in res.get("per_class", {}).items():
            keys = SEG_KEY_METRICS if "dice" in met else KEY_METRICS
            lines.append(f"  - {cls}: " + "; ".join(f"{k} {_ci(met.get(k))}" for k in keys))
        tc = res.get("text_conditions")
        if tc:
            c = tc["conditions"]
            lines.append(f"  - Dice with the scan's report {_ci(c['report']['dice'])}, with no report {_ci(c['no_report']['dice'])}, "
                         f"with another patient's report {_ci(c['other_patient_report']['dice'])}")
    calib = eval_dir / "calibration.json"
    if calib.is_file():
        c = json.loads(calib.read_text())
        ece = c["ece"].get("test") or c["ece"].get("val") or {}
        what = c.get("summary") or f"temperature {c['temperature']:.3f} (fitted on val)"
        lines.append(f"- calibration: {what}; test ECE {ece.get('raw', float('nan')):.3f} raw -> {ece.get('calibrated', float('nan')):.3f} calibrated")
    faith = eval_dir / "faithfulness.json"
    if faith.is_file():
        fj = json.loads(faith.read_text())
        lines.append(f"- explanations: most faithful CAM on {fj['images']} {fj['split']} images: {fj['most_faithful']} (deletion/insertion, see report.html)")
    small = [s for s, v in summary.get("splits", {}).items() if s in ("val", "test") and (v.get("patients") or 0) < 100]
    lines += [
        "",
        "## Limitations",
        "- Evaluated on data from the same source as the training data; performance on other scanners, protocols, sites or populations is unknown.",
    ]
    if small:
        lines.append(f"- Small evaluation split(s) ({', '.join(small)}: < 100 patients): wide confidence intervals; treat point estimates with caution.")
    if synthetic:
        lines.append("- Synthetic data: simulated anatomy and lesions are simplifications of real scans.")
    lines.append("- Heat maps show where the model looked, not why; check their faithfulness scores before reading them clinically.")
    lines.append("")
    path = run_dir / "model_card.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
