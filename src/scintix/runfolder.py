"""A trained run folder, loaded once: config, model, classes, thresholds, calibration.

The one place that reads a run folder for use (``predict``, ``explain``,
``report``, serving); none of them imports the training orchestrator.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_checkpoint, load_model_state
from .config import RunConfig, _build, config_differences, parse_yaml
from .models import create_model
from .models.registry import MODELS, builder_inputs
from .tasks import Task, get_task

__all__ = ["LoadedRun", "load_run", "load_run_config", "refuse_other_settings", "build_model_for_run", "in_channels", "is_managed", "read_json", "MANAGED"]


MANAGED = ("config.yaml", "meta.json", "tokenizer.json", "split.csv", "data_summary.json", "history.csv", "report.html", "model_card.md", "checkpoints", "eval", "tb", "synthetic_data", "explanations")


def load_run_config(run_dir: str | Path) -> RunConfig:
    """The run's resolved config; a missing, empty or invalid ``config.yaml`` is a one-line error naming it."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no config.yaml)")
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"{path}: empty or not a mapping; not a run's config")
    try:
        return _build(RunConfig, raw, "")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None


RUNTIME_ONLY = ("train.device", "train.num_workers", "train.progress", "train.tensorboard")  # where and how it runs, not what it learns


def refuse_other_settings(run_dir: str | Path, cfg: RunConfig, what: str) -> None:
    """A one-line error when ``run_dir`` holds a run (finished or not) made with settings other than ``cfg``: reusing
    or resuming it would report the old settings' model as the new one's. Says what differs; silent without a run.
    Settings of where it runs (``RUNTIME_ONLY``: device, workers, progress bar, TensorBoard) may differ."""
    if not (Path(run_dir) / "config.yaml").is_file():
        return
    changed = config_differences(load_run_config(run_dir), cfg, ignore=RUNTIME_ONLY)
    if changed:
        more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
        raise ValueError(f"{run_dir}: {what} was made with other settings ({'; '.join(changed[:3])}{more}); "
                         "give another --out, or remove that folder to train it again")


def read_yaml(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text; not a run's config") from None
    return parse_yaml(text, path)


def read_json(path: Path) -> dict:
    """A JSON object from a run file; invalid JSON or another type is a one-line error naming the file."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(value).__name__}")
    return value


def is_managed(run_dir: str | Path, path: str | Path) -> bool:
    """True when ``path`` is (or lies in) a file or folder scintix writes in a run folder: never an output of another command."""
    try:
        rel = Path(path).resolve().relative_to(Path(run_dir).resolve())
    except ValueError:
        return False
    return not rel.parts or rel.parts[0] in MANAGED


def in_channels(cfg: RunConfig) -> int:
    """Input channels: views stacked, times CT windows stacked."""
    return (len(cfg.data.views) if cfg.data.views else 1) * (len(cfg.data.windows) if cfg.data.windows else 1)


def build_model_for_run(cfg: RunConfig, n_classes: int, tokenizer=None, run_dir: str | Path | None = None, pretrained: bool = True) -> torch.nn.Module:
    """The configured model; a report-guided one gets ``tokenizer``, or the one saved in ``run_dir`` (``tokenizer.json``).

    ``pretrained=False`` skips ``model.weights``: a trained run's own checkpoint is loaded next, so the
    starting-point file is neither read again nor required to still exist.
    """
    m = cfg.model
    extra = {}
    if m.name in MODELS and "text" in builder_inputs(m.name):
        t = cfg.text
        if tokenizer is None and run_dir is not None:
            from .text.tokenizer import load_tokenizer

            tokenizer = load_tokenizer(Path(run_dir) / "tokenizer.json")
        extra = dict(tokenizer=tokenizer, text_dim=t.dim, text_layers=t.layers, text_heads=t.heads, report_dropout=t.report_dropout,
                     hf_model=t.hf_model, hf_freeze=t.hf_freeze, max_length=t.max_length, fuse_stages=t.fuse_stages, position=t.position, prior=t.prior,
                     prior_input=t.prior_input)
        if t.position == "body" and cfg.data.patch_size:
            raise ValueError(f"text.position=body with data.patch_size={list(cfg.data.patch_size)}: a training patch holds no whole body to measure")
        if (t.prior or t.prior_input) and cfg.data.patch_size:
            raise ValueError(f"text.prior{'_input' if t.prior_input else ''} with data.patch_size={list(cfg.data.patch_size)}: the prior maps the whole scan, a training patch is a part of it")
    model = create_model(m.name, in_channels=in_channels(cfg), num_classes=n_classes, weights=m.weights if pretrained else None, weights_reduce=m.weights_reduce,
                         freeze=m.freeze_backbone, dropout=m.dropout, small_input=m.small_input or None, stem=m.stem, deep_supervision=m.deep_supervision, **extra)
    if cfg.data.patch_size and hasattr(model, "roi_size"):
        model.roi_size = tuple(cfg.data.patch_size)  # trained on patches: whole scans are inferred by sliding window
    return model


@dataclass
class LoadedRun:
    """A trained run ready to apply: config, task, model (eval mode, on its device), classes, thresholds, temperature."""

    run_dir: Path
    cfg: RunConfig
    model: torch.nn.Module
    classes: list[str]
    thresholds: dict[str, float]
    temperature: float
    device: torch.device
    amp: object
    task: Task
    synthetic: bool = False
    # a report-guided run's thresholds for an input without a report, chosen on validation with every report withheld:
    # its image path alone is less confident than with a report, so the with-report cut can erase every lesion.
    # None for other runs and for text runs evaluated before these were recorded (their with-report thresholds apply).
    thresholds_no_report: dict[str, float] | None = None

    def thresholds_for(self, report: str | None) -> dict[str, float]:
        """The thresholds for one input: the no-report ones when a report-guided run reads none, else ``thresholds``."""
        return thresholds_for_report(report, self.thresholds, self.thresholds_no_report)


def thresholds_for_report(report: str | None, thresholds: dict, thresholds_no_report: dict | None) -> dict:
    """Where a scan is cut: at ``thresholds_no_report`` when a report-guided model reads no report, else at ``thresholds``
    (one rule for predict, serve, DICOM outputs and evaluation)."""
    return thresholds_no_report if thresholds_no_report is not None and not report else thresholds


def final_stage(folder: Path) -> Path:
    """A staged run's output folder (``stages.json``, ``stage1-*/``, ``stage2-*/`` ...) stands for its last stage; any other folder for itself."""
    if (folder / "config.yaml").is_file() or not (folder / "stages.json").is_file():
        return folder
    numbered = {int(m.group(1)): d for d in folder.iterdir() if d.is_dir() and (m := re.fullmatch(r"stage(\d+)-.+", d.name))}  # training.stages' names
    stages = [numbered[k] for k in sorted(numbered)]
    if not stages:
        raise FileNotFoundError(f"{folder}: stages.json but no stage folders (stage1-..., stage2-...)")
    if not (stages[-1] / "eval" / "thresholds.json").is_file():
        raise FileNotFoundError(f"{stages[-1]}: the last stage has not finished; give the training command again to resume it")
    return stages[-1]


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load ``run_dir``'s best checkpoint with what it was evaluated with (a staged run's folder: its last stage).

    Every file is checked as it is read; a damaged or foreign one is a
    one-line error naming it, never a traceback.

    Raises:
        FileNotFoundError: no config, no checkpoint, or not evaluated yet (no thresholds).
        ValueError: invalid YAML/JSON, a damaged checkpoint, thresholds that
            do not cover the classes, or a stored temperature that is not a
            finite number > 0.
    """
    from .runtime import resolve_device, resolve_precision

    run_dir = final_stage(Path(run_dir))
    if (run_dir / ENSEMBLE_FILE).is_file():
        return load_ensemble(run_dir)
    cfg = load_run_config(run_dir)
    ck = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    classes = ck.get("classes")
    if not isinstance(classes, (list, tuple)) or len(classes) < 1 or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{run_dir / 'checkpoints' / 'best.pt'}: checkpoint holds no class names; not a scintix run's checkpoint")
    classes = list(classes)
    thr_file = run_dir / "eval" / "thresholds.json"
    if not thr_file.is_file():
        raise FileNotFoundError(f"{run_dir}: no eval/thresholds.json; run `scintix evaluate {run_dir}` first")
    thr_json = read_json(thr_file)
    thresholds = _checked_thresholds(thr_json.get("thresholds"), thr_file, "thresholds")
    no_report = thr_json.get("thresholds_no_report")
    if no_report is not None:
        no_report = _checked_thresholds(no_report, thr_file, "thresholds_no_report")
        if set(no_report) != set(thresholds):
            raise ValueError(f"{thr_file}: 'thresholds_no_report' names {sorted(no_report)}, 'thresholds' {sorted(thresholds)}; re-run `scintix evaluate {run_dir}`")
    task = get_task(cfg.data.task)
    if not task.dense:
        try:
            task.decide(np.full(len(classes), 0.5), thresholds, classes)
        except KeyError as exc:
            raise ValueError(f"{thr_file}: no threshold for class {exc.args[0]!r} (has {sorted(thresholds)}); re-run `scintix evaluate {run_dir}`") from None
    calib = run_dir / "eval" / "calibration.json"
    temperature = read_json(calib).get("temperature", 1.0) if calib.is_file() else 1.0
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{calib}: invalid calibration temperature {temperature!r} (must be a finite number > 0); re-run `scintix evaluate {run_dir}`")
    model = build_model_for_run(cfg, len(classes), run_dir=run_dir, pretrained=False)
    load_model_state(model, ck["model"], run_dir / "checkpoints" / "best.pt")
    model = with_tta(model, cfg, task)
    device = resolve_device(cfg.train.device)
    amp = resolve_precision(cfg.train.precision, device)
    model.to(device).eval()
    meta = run_dir / "meta.json"
    synthetic = bool(meta.is_file() and read_json(meta).get("synthetic"))
    return LoadedRun(run_dir, cfg, model, classes, thresholds, float(temperature), device, amp, task, synthetic, no_report)


def _checked_thresholds(value, path: Path, key: str) -> dict[str, float]:
    if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in value.values()):
        raise ValueError(f"{path}: {key!r} must map each class to a number in [0, 1], got {value!r}"[:300])
    return value


ENSEMBLE_FILE = "ensemble.json"
# what must agree between members: one preprocessing for all of them
_SHARED_DATA = ("task", "image_size", "normalize", "percentiles", "views", "view_filter", "windows", "region")


def with_tta(model: torch.nn.Module, cfg: RunConfig, task: Task) -> torch.nn.Module:
    """``model`` wrapped in test-time augmentation when ``eval.tta`` names transforms (classification only)."""
    if not cfg.eval.tta:
        return model
    if task.dense:
        raise ValueError(f"eval.tta={list(cfg.eval.tta)}: test-time augmentation is for classification runs")
    from .models.ensemble import TTA

    return TTA(model, cfg.eval.tta, task.multilabel)


def write_ensemble(out_dir: str | Path, members: list[str | Path]) -> Path:
    """An ensemble folder (``ensemble.json``) of trained, evaluated runs: ``load_run`` / predict / serve take it like a run."""
    out_dir = Path(out_dir)
    members = [Path(m).resolve() for m in members]
    runs = [load_run(m) for m in members]  # every member must load (and agree, below) before anything is written
    _check_members(runs)
    thresholds = ensemble_val_thresholds(runs)
    spec = {"members": [str(m) for m in members], "method": "mean of the members' calibrated probabilities"}
    if thresholds is not None:
        spec.update(thresholds=thresholds, thresholds_chosen_on=f"the ensemble's own validation probabilities ({runs[0].cfg.eval.threshold}; the members share their validation images)")
    else:  # e.g. the fold models of `scintix cv`: each was validated on other patients, so no ensemble prediction covers a common val set
        spec.update(thresholds_chosen_on="mean of the members' validation thresholds (their validation images differ)")
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / ENSEMBLE_FILE
    path.write_text(json.dumps(spec, indent=2))
    return path


def ensemble_val_thresholds(runs: list[LoadedRun]) -> dict[str, float] | None:
    """Thresholds chosen on the mean of the members' calibrated validation probabilities (what the ensemble predicts there).

    Only when every member's ``eval/val/predictions.csv`` covers the same images (members trained on one split, e.g. seeds);
    ``None`` otherwise. Why: members' probability scales can differ a lot (the P1 fold models' thresholds ran from 0.04 to
    0.90), so the mean of their thresholds need not be a good cut of the mean of their probabilities.
    """
    import csv

    first = runs[0]
    if first.task.dense:
        return None
    tables = []
    for r in runs:
        f = r.run_dir / "eval" / "val" / "predictions.csv"
        if not f.is_file():
            return None
        with open(f, newline="", encoding="utf-8") as fh:
            tables.append({row["path"]: row for row in csv.DictReader(fh)})
    keys = sorted(tables[0])
    if not keys or any(t.keys() != tables[0].keys() for t in tables[1:]):
        return None
    classes = first.classes
    probs = np.mean([[[float(t[k][f"prob_{c}"]) for c in classes] for k in keys] for t in tables], axis=0)
    names = [tables[0][k]["target"] for k in keys]
    if first.task.multilabel:
        targets = np.array([[c in set(n.split(";")) for c in classes] for n in names], dtype=np.float32)
    else:
        targets = np.array([classes.index(n) for n in names])
    return {c: float(v) for c, v in first.task.choose_thresholds(probs, targets, classes, first.cfg.eval).items()}


def _check_members(runs: list[LoadedRun]) -> None:
    first = runs[0]
    for r in runs[1:]:
        if r.classes != first.classes:
            raise ValueError(f"{r.run_dir}: classes {r.classes} differ from {first.run_dir}'s {first.classes}; an ensemble's members share their classes")
        for k in _SHARED_DATA:
            if getattr(r.cfg.data, k) != getattr(first.cfg.data, k):
                raise ValueError(f"{r.run_dir}: data.{k}={getattr(r.cfg.data, k)!r} differs from {first.run_dir}'s {getattr(first.cfg.data, k)!r}; members must read images alike")


def ensemble_members(folder: str | Path) -> tuple[dict, list[Path]]:
    """``folder/ensemble.json`` and its member run folders (relative ones resolved against ``folder``); a bad list is a one-line error."""
    folder = Path(folder)
    spec = read_json(folder / ENSEMBLE_FILE)
    members = spec.get("members")
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise ValueError(f"{folder / ENSEMBLE_FILE}: 'members' must list run folders")
    return spec, [Path(m) if Path(m).is_absolute() else folder / m for m in members]


def load_ensemble(folder: str | Path) -> LoadedRun:
    """The runs named in ``folder/ensemble.json`` as one :class:`LoadedRun` (mean calibrated probability; the thresholds
    ``write_ensemble`` chose on the ensemble's validation probabilities, else the mean of the members')."""
    from .models.ensemble import Ensemble

    folder = Path(folder)
    spec, members = ensemble_members(folder)
    runs = [load_run(m) for m in members]
    _check_members(runs)
    first = runs[0]
    model = Ensemble([r.model for r in runs], [r.temperature for r in runs], first.task.multilabel).to(first.device).eval()
    saved = spec.get("thresholds")
    if saved is None:
        thresholds = {c: float(np.mean([r.thresholds[c] for r in runs])) for c in first.thresholds}
    elif isinstance(saved, dict) and set(saved) == set(first.thresholds) and all(isinstance(v, (int, float)) and math.isfinite(v) for v in saved.values()):
        thresholds = {c: float(v) for c, v in saved.items()}
    else:
        raise ValueError(f"{folder / ENSEMBLE_FILE}: 'thresholds' must give a finite number for each of {sorted(first.thresholds)}")
    # members that read reports: their no-report thresholds averaged (no ensemble prediction without reports was validated)
    no_report = ({c: float(np.mean([r.thresholds_no_report[c] for r in runs])) for c in first.thresholds}
                 if all(r.thresholds_no_report is not None for r in runs) else None)
    return LoadedRun(folder, first.cfg, model, first.classes, thresholds, 1.0, first.device, first.amp, first.task, any(r.synthetic for r in runs), no_report)
