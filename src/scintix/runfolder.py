"""A trained run folder, loaded once: config, model, classes, thresholds, calibration.

The one place that reads a run folder for use (``predict``, ``explain``,
``report``, serving); none of them imports the training orchestrator.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from .config import RunConfig, _build
from .models import create_model
from .tasks import Task, get_task

__all__ = ["LoadedRun", "load_run", "load_run_config", "build_model_for_run", "in_channels"]


def load_run_config(run_dir: str | Path) -> RunConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir}: not a run folder (no config.yaml)")
    return _build(RunConfig, yaml.safe_load(path.read_text()), "")


def in_channels(cfg: RunConfig) -> int:
    """Input channels: views stacked, times CT windows stacked."""
    return (len(cfg.data.views) if cfg.data.views else 1) * (len(cfg.data.windows) if cfg.data.windows else 1)


def build_model_for_run(cfg: RunConfig, n_classes: int) -> torch.nn.Module:
    m = cfg.model
    model = create_model(m.name, in_channels=in_channels(cfg), num_classes=n_classes, weights=m.weights, weights_reduce=m.weights_reduce,
                         freeze=m.freeze_backbone, dropout=m.dropout, small_input=m.small_input or None, deep_supervision=m.deep_supervision)
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


def load_run(run_dir: str | Path) -> LoadedRun:
    """Load ``run_dir``'s best checkpoint with what it was evaluated with.

    Raises:
        FileNotFoundError: not evaluated yet (no thresholds).
        ValueError: a stored temperature that is not a finite number > 0.
    """
    from .training.checkpoint import load_checkpoint, load_model_state
    from .training.perf import resolve_device, resolve_precision

    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ck = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    classes = list(ck["classes"])
    thr_file = run_dir / "eval" / "thresholds.json"
    if not thr_file.is_file():
        raise FileNotFoundError(f"{run_dir}: no eval/thresholds.json; run `scintix evaluate {run_dir}` first")
    thresholds = json.loads(thr_file.read_text())["thresholds"]
    calib = run_dir / "eval" / "calibration.json"
    temperature = json.loads(calib.read_text()).get("temperature", 1.0) if calib.is_file() else 1.0
    if not isinstance(temperature, (int, float)) or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{calib}: invalid calibration temperature {temperature!r} (must be a finite number > 0); re-run `scintix evaluate {run_dir}`")
    model = build_model_for_run(cfg, len(classes))
    load_model_state(model, ck["model"], run_dir / "checkpoints" / "best.pt")
    device = resolve_device(cfg.train.device)
    amp = resolve_precision(cfg.train.precision, device)
    model.to(device).eval()
    meta = run_dir / "meta.json"
    synthetic = bool(meta.is_file() and json.loads(meta.read_text()).get("synthetic"))
    return LoadedRun(run_dir, cfg, model, classes, thresholds, float(temperature), device, amp, get_task(cfg.data.task), synthetic)
