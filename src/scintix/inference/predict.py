"""``predict``: a saved run applied to a file, a folder or a manifest.

Uses the run's best checkpoint, its preprocessing, and the thresholds chosen
on its validation split. A file that cannot be read gets a row with its error
and the others are still predicted.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..data.datasets import preprocess
from ..data.io import ImageReadError
from ..data.manifest import Record, load_inputs
from ..runfolder import LoadedRun, load_run
from ..training.perf import autocast

__all__ = ["predict_paths", "segmentation_row", "write_prediction_rows", "load_run", "prepare_units", "LoadedRun"]


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


def predict_paths(run_dir: str | Path, source: str | Path, batch_size: int = 32, out_dir: str | Path | None = None) -> list[dict]:
    """Predict every image in ``source``; one dict per image (or per patient with views).

    Classification rows hold ``path``, ``prob_<class>`` per class, ``predicted``
    and ``error`` (empty when it worked). Probabilities are calibrated with the
    run's temperature (``eval/calibration.json``, fitted on validation);
    ``predicted`` uses the thresholds chosen on the same calibrated validation
    probabilities. Segmentation rows hold the foreground pixel count and
    fraction, the highest lesion probability and, with ``out_dir``, the paths
    of the predicted mask PNG (pixel value = class index) and an overlay PNG.
    """
    run = load_run(run_dir)
    task, classes = run.task, run.classes
    keys, arrays, rows = prepare_units(run.cfg, source)
    for start in range(0, len(arrays), batch_size):
        x = torch.from_numpy(np.stack(arrays[start : start + batch_size])).to(run.device)
        with torch.no_grad(), autocast(run.device, run.amp):
            p = task.activation(run.model(x).float() / run.temperature).cpu().numpy()
        for key, arr, pi in zip(keys[start : start + batch_size], arrays[start : start + batch_size], p):
            if not np.isfinite(pi).all():
                rows.append({"path": key, "error": f"{key}: the model gave non-finite probabilities; no label"})
            elif task.dense:
                rows.append({"path": key, **segmentation_row(run, key, arr, pi, out_dir), "error": ""})
            else:
                rows.append({"path": key, **{f"prob_{c}": float(v) for c, v in zip(classes, pi)}, "predicted": task.decide(pi, run.thresholds, classes), "error": ""})
    order = {k: i for i, k in enumerate(keys)}
    rows.sort(key=lambda r: order.get(r["path"], -1))
    return rows


def segmentation_row(run: LoadedRun, key: str, image: np.ndarray, probs: np.ndarray, out_dir) -> dict:
    """Lesion pixel count, fraction and top probability for one input; with ``out_dir`` its mask and overlay PNGs."""
    from ..evaluation.seg_outputs import overlay_mask_figure, safe_stem, save_mask_png

    label = run.task.masks(probs[None], run.thresholds, run.classes)[0]
    row = {"lesion_pixels": int((label > 0).sum()), "lesion_fraction": float((label > 0).mean()), "max_lesion_prob": float(probs[1:].max()) if len(probs) > 1 else 0.0}
    if out_dir is not None:
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        stem = safe_stem(key)
        save_mask_png(out / "masks" / f"{stem}.png", label, run.synthetic)
        fig = overlay_mask_figure(image, None, label, f"predicted lesions: {row['lesion_pixels']} px" + (" -- SYNTHETIC data" if run.synthetic else ""))
        (out / "overlays").mkdir(parents=True, exist_ok=True)
        fig.savefig(out / "overlays" / f"{stem}.png")
        plt.close(fig)
        row.update(mask_png=str(out / "masks" / f"{stem}.png"), overlay_png=str(out / "overlays" / f"{stem}.png"))
    return row


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

