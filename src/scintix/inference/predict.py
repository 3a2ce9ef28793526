"""``predict``: a saved run applied to a file, a folder or a manifest.

Uses the run's best checkpoint, its preprocessing, and the thresholds chosen
on its validation split. A file that cannot be read gets a row with its error
and the others are still predicted.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.datasets import preprocess
from ..data.io import ImageReadError
from ..data.manifest import Record, load_inputs
from ..evaluation.report import class_columns, decide
from ..training.checkpoint import load_checkpoint, load_model_state
from ..training.loop import probabilities
from ..training.perf import autocast, resolve_device, resolve_precision
from ..training.run import build_model_for_run, load_run_config

__all__ = ["predict_paths", "write_prediction_rows", "load_run", "prepare_units", "LoadedRun"]


@dataclass
class LoadedRun:
    """A trained run ready to apply: config, model (eval mode, on its device), classes, thresholds, temperature."""

    run_dir: Path
    cfg: object
    model: torch.nn.Module
    classes: list[str]
    thresholds: dict[str, float]
    temperature: float
    device: torch.device
    amp: object


def load_run(run_dir: str | Path) -> LoadedRun:
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    ck = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    classes = list(ck["classes"])
    thr_file = run_dir / "eval" / "thresholds.json"
    if not thr_file.is_file():
        raise FileNotFoundError(f"{run_dir}: no eval/thresholds.json; run `scintix evaluate {run_dir}` first")
    thresholds = json.loads(thr_file.read_text())["thresholds"]
    calib = run_dir / "eval" / "calibration.json"
    temperature = float(json.loads(calib.read_text())["temperature"]) if calib.is_file() else 1.0
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"{calib}: invalid calibration temperature {temperature!r} (must be a finite number > 0); re-run `scintix evaluate {run_dir}`")
    model = build_model_for_run(cfg, len(classes))
    load_model_state(model, ck["model"], run_dir / "checkpoints" / "best.pt")
    device = resolve_device(cfg.train.device)
    amp = resolve_precision(cfg.train.precision, device)
    model.to(device).eval()
    return LoadedRun(run_dir, cfg, model, classes, thresholds, temperature, device, amp)


def prepare_units(cfg, source: str | Path | Sequence[Record]) -> tuple[list[str], list[np.ndarray], list[dict]]:
    """Model inputs for ``source`` with the run's preprocessing: (keys, arrays, error rows).

    One unit per image, or per patient when the run stacks views; a unit that
    cannot be read becomes an error row naming the file.
    """
    d = cfg.data
    records = list(source) if isinstance(source, (list, tuple)) else load_inputs(source)
    units: list[tuple[str, tuple[str, ...]]] = []
    errors: list[dict] = []
    if d.views:
        by_pid: dict[str, dict[str, str]] = defaultdict(dict)
        for r in records:
            by_pid[r.patient_id][r.view or ""] = r.path
        for pid, views in by_pid.items():
            if all(v in views for v in d.views):
                units.append((pid, tuple(views[v] for v in d.views)))
            else:
                errors.append({"path": pid, "error": f"needs views {list(d.views)} (a manifest with patient_id and view columns), has {sorted(views)}"})
    else:
        units = [(r.path, (r.path,)) for r in records if d.view_filter is None or r.view in (None, d.view_filter)]
    arrays, keys = [], []
    for key, paths in units:
        try:
            arrays.append(preprocess(paths, tuple(d.image_size), d.normalize, tuple(d.percentiles), windows=d.windows))
            keys.append(key)
        except ImageReadError as exc:
            errors.append({"path": key, "error": str(exc)})
    return keys, arrays, errors


def predict_paths(run_dir: str | Path, source: str | Path, batch_size: int = 32) -> list[dict]:
    """Predict every image in ``source``; one dict per image (or per patient with views).

    Rows hold ``path``, ``prob_<class>`` per class, ``predicted`` and ``error``
    (empty when it worked). Probabilities are calibrated with the run's
    temperature (``eval/calibration.json``, fitted on validation); ``predicted``
    uses the thresholds chosen on the same calibrated validation probabilities.
    """
    run = load_run(run_dir)
    task, classes = run.cfg.data.task, run.classes
    keys, arrays, rows = prepare_units(run.cfg, source)
    cols = class_columns(task, classes)
    for start in range(0, len(arrays), batch_size):
        x = torch.from_numpy(np.stack(arrays[start : start + batch_size])).to(run.device)
        with torch.no_grad(), autocast(run.device, run.amp):
            p = probabilities(run.model(x).float() / run.temperature, task).cpu().numpy()
        for key, pi in zip(keys[start : start + batch_size], p):
            rows.append({"path": key, **{f"prob_{c}": float(v) for c, v in zip(classes, pi)}, "predicted": decide(pi, run.thresholds, task, classes, cols), "error": ""})
    order = {k: i for i, k in enumerate(keys)}
    rows.sort(key=lambda r: order.get(r["path"], -1))
    return rows


def write_prediction_rows(rows: Sequence[dict], out: str | Path) -> Path:
    """CSV or JSON by the suffix of ``out``."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(json.dumps(list(rows), indent=2))
        return out
    fields = list(dict.fromkeys(k for r in rows for k in r))
    fields = ["path"] + [f for f in fields if f not in ("path", "error")] + ["error"]
    with open(out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow(r)
    return out

