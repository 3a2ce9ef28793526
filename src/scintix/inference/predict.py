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

from .._atomic import atomic_path
from ..data.base import split_fragment
from ..data.crop import RegionReader
from ..data.datasets import preprocess
from ..data.io import ImageReadError, read_image
from ..data.manifest import Record, load_inputs
from ..evaluation.seg_outputs import unique_stems
from ..runfolder import LoadedRun, load_run
from ..runtime import autocast
from .onnx import with_engine

__all__ = ["predict_paths", "predict_units", "unit_reports", "segmentation_row", "write_prediction_rows", "load_run", "prepare_units", "write_row_dicom", "LoadedRun"]


def prepare_units(cfg, source: str | Path | Sequence[Record], notes: dict[str, list[str]] | None = None,
                  crops: dict[str, list[dict]] | None = None) -> tuple[list[str], list[np.ndarray], list[dict]]:
    """Model inputs for ``source`` with the run's preprocessing: (keys, arrays, error rows).

    One unit per image, or per patient when the run stacks views. Every
    record ends up in exactly one of the two: a unit that cannot be read,
    a view the run was not trained on, or a patient missing a view becomes
    an error row naming the file. ``notes`` (optional) receives, per key,
    what :func:`~scintix.data.datasets.preprocess` noticed (conversions,
    ``degenerate:`` images).

    A run of one body region (``data.region``, e.g. BS-80K's right-chest
    crops) gets whole-body views cropped to that region first
    (:class:`~scintix.data.crop.RegionReader`); ``crops`` (optional) receives,
    per key, one entry per cropped view (source shape, box, region boxes, image).
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
                errors += [{"path": p, "error": f"{p}: view {v!r} is not one of the run's views {list(d.views)}; not used"} for v, p in views.items() if v not in d.views]
            else:
                errors.append({"path": pid, "error": f"{pid}: needs views {list(d.views)} (a manifest with patient_id and view columns, or an NM file naming them), has {sorted(views)}"})
    else:
        for r in records:
            if d.view_filter is None or r.view in (None, d.view_filter):
                units.append((r.path, (r.path,)))
            else:
                errors.append({"path": r.path, "error": f"{r.path}: {_view_problem(r.view, d.view_filter)}"})
    arrays, keys = [], []
    reader = RegionReader(d.region, {r.path: r.view for r in records}) if d.region or crops is not None else read_image
    for key, paths in units:
        found: list[str] = []
        try:
            arrays.append(preprocess(paths, tuple(d.image_size), d.normalize, tuple(d.percentiles), reader=reader, windows=d.windows, notes=found))
            keys.append(key)
            if notes is not None and found:
                notes[key] = found
            if crops is not None and any(p in reader.found for p in paths):
                crops[key] = [dict(reader.found[p], path=p) for p in paths if p in reader.found]
        except ImageReadError as exc:
            errors.append({"path": key, "error": str(exc)})
    return keys, arrays, errors


def _view_problem(view: str | None, wanted: str) -> str:
    if view and view.startswith("frame"):  # identify_views' fallback name: the header names no view
        return f"the header does not say which view frame {view[5:]} is, and this run only reads {wanted!r} views; give a manifest with a view column"
    return f"view {view!r}, but this run was trained on {wanted!r} views only (data.view_filter); not predicted"


def predict_paths(run_dir: str | Path, source: str | Path, batch_size: int = 32, out_dir: str | Path | None = None, engine: str = "torch",
                  dicom_dir: str | Path | None = None, deidentify: bool = False, report: str | None = None) -> list[dict]:
    """Predict every image in ``source``; one dict per image (or per patient with views).

    Classification rows hold ``path``, ``prob_<class>`` per class, ``predicted``
    and ``error`` (empty when it worked). Probabilities are calibrated with the
    run's temperature (``eval/calibration.json``, fitted on validation);
    ``predicted`` uses the thresholds chosen on the same calibrated validation
    probabilities. Segmentation rows hold the foreground pixel count and
    fraction, the highest lesion probability and, with ``out_dir``, the paths
    of the predicted mask PNG (pixel value = class index) and an overlay PNG.
    ``engine="onnx"`` runs the run's checked ONNX export (``scintix export``) in ONNX Runtime.
    With ``dicom_dir``, every prediction from one DICOM file also gets DICOM outputs there (a finding SR; for
    segmentation a lesion SEG and an overlay Secondary Capture; see :mod:`.dicom_out`), listed in ``dicom_files``;
    one that cannot be made is named in ``warning``, and the prediction stands.
    A run of one body region (``data.region``) reads whole-body views cropped to that region; ``crop_box`` says where
    (``y0 x0 y1 x1`` on the source view).
    """
    run = with_engine(load_run(run_dir), engine)
    return predict_units(run, source, batch_size, out_dir, dicom_dir, deidentify, report=report)


def predict_units(run: LoadedRun, source, batch_size: int = 32, out_dir: str | Path | None = None, dicom_dir: str | Path | None = None,
                  deidentify: bool = False, arrays_out: dict | None = None, probs_out: dict | None = None, crops_out: dict | None = None,
                  forward=None, report: str | None = None) -> list[dict]:
    """:func:`predict_paths` with a run already loaded (serving loads it once); ``arrays_out``, ``probs_out`` and ``crops_out``
    (optional) receive each key's model input, calibrated probabilities and region crops (see :func:`prepare_units`).
    ``forward`` (optional) replaces ``run.model`` as the function from a batch to logits, e.g. one that also makes heat maps
    in the same pass (called on the batches in key order). A text-guided run reads each input's report (the manifest's
    ``data.report_column``), or ``report`` for every input when given; with none it runs its image path alone."""
    task, classes = run.task, run.classes
    notes: dict[str, list[str]] = {}
    crops: dict[str, list[dict]] = {} if crops_out is None else crops_out
    d_region = run.cfg.data.region
    records = list(source) if isinstance(source, (list, tuple)) else load_inputs(source)
    keys, arrays, rows = prepare_units(run.cfg, records, notes, crops if d_region or crops_out is not None else None)  # regions found only when needed
    texts = unit_reports(run.cfg, records, report) if "text" in getattr(run.model, "inputs", ()) else None
    if arrays_out is not None:
        arrays_out.update(zip(keys, arrays))
    stems = unique_stems(keys)
    for start in range(0, len(arrays), batch_size):
        x = torch.from_numpy(np.stack(arrays[start : start + batch_size])).to(run.device)
        extra = {"text": [texts.get(k, "") for k in keys[start : start + batch_size]]} if texts is not None else {}
        with torch.no_grad(), autocast(run.device, run.amp):
            p = task.activation((forward or run.model)(x, **extra).float() / run.temperature).cpu().numpy()
        for key, arr, pi in zip(keys[start : start + batch_size], arrays[start : start + batch_size], p):
            if probs_out is not None:
                probs_out[key] = pi
            found = notes.get(key, [])
            warning = "; ".join(n.removeprefix("degenerate: ") for n in found)
            if not np.isfinite(pi).all():
                rows.append({"path": key, "error": f"{key}: the model gave non-finite probabilities; no label"})
            elif task.dense:
                used = {"report": texts.get(key, "")} if texts is not None else {}  # what the text-guided model read ("" = none: its image path alone)
                if texts is not None and not used["report"] and run.thresholds_no_report is None:
                    warning = "; ".join(filter(None, [warning, f"no report, and the run has no threshold for that (chosen with reports); re-run `scintix evaluate {run.run_dir}`"]))
                rows.append({"path": key, **segmentation_row(run, key, arr, pi, out_dir, stems[key], used.get("report")), **used, "warning": warning, "error": ""})
            elif any(n.startswith("degenerate: ") for n in found):  # probabilities shown for what they are worth; no diagnosis
                rows.append({"path": key, **{f"prob_{c}": float(v) for c, v in zip(classes, pi)}, "predicted": "", "warning": warning + "; no label given", "error": ""})
            else:
                rows.append({"path": key, **{f"prob_{c}": float(v) for c, v in zip(classes, pi)}, "predicted": task.decide(pi, run.thresholds, classes), "warning": warning, "error": ""})
            if dicom_dir is not None and not rows[-1].get("error") and rows[-1].get("predicted", "x") != "":
                write_row_dicom(run, key, arr, pi, rows[-1], dicom_dir, stems[key], deidentify, crops[key][0]["box"] if d_region and key in crops else None)
    for r in rows:
        if d_region and r["path"] in crops and not r.get("error"):  # where the model looked: the region box on the whole-body view (y0 x0 y1 x1)
            r["crop_box"] = "; ".join(_box_text(c) for c in crops[r["path"]] if c["box"])
    order = {k: i for i, k in enumerate(keys)}
    rows.sort(key=lambda r: order.get(r["path"], -1))
    return rows


def unit_reports(cfg, records: Sequence[Record], report: str | None = None) -> dict[str, str]:
    """Each prediction unit's report for a text-guided run: ``report`` for all when given, else the records' own
    (``data.report_column``; the first view's for stacked views), opened by the view with ``text.view_prefix``;
    ``""`` where there is none."""
    from ..text.report import model_report

    col = cfg.data.report_column
    prefix = cfg.text.view_prefix and not cfg.data.views

    def text(r: Record) -> str:
        own = report if report is not None else (r.report if col == "report" else r.extra.get(col))
        return model_report(own, r.view, prefix) or ""

    by_path = {r.path: text(r) for r in records}
    if cfg.data.views:
        out: dict[str, str] = {}
        for r in records:
            out.setdefault(r.patient_id, by_path[r.path])
        return out
    return by_path


def _box_text(crop: dict) -> str:
    view = split_fragment(crop["path"])[1]  # several views stacked: say which box is which
    return (f"{view}: " if view else "") + " ".join(map(str, crop["box"]))


def write_row_dicom(run, key, arr, probs, row, dicom_dir, stem, deidentify=False, box=None, heatmap=None) -> None:
    """DICOM outputs for one prediction row (:func:`~.dicom_out.write_for_prediction`), listed in its ``dicom_files``; one that
    cannot be made is named in its ``warning`` and the prediction stands."""
    from .dicom_out import write_for_prediction

    if run.cfg.data.views:
        row["dicom_files"] = ""
        row["warning"] = "; ".join(filter(None, [row.get("warning", ""), "no DICOM outputs: this run stacks views; they need one source file per prediction"]))
        return
    try:
        row["dicom_files"] = ";".join(write_for_prediction(run, key, arr, probs, row, dicom_dir, stem, deidentify, heatmap=heatmap, box=box))
    except (ValueError, OSError, ImageReadError) as exc:
        row["dicom_files"] = ""
        row["warning"] = "; ".join(filter(None, [row.get("warning", ""), f"no DICOM outputs: {' '.join(str(exc).split())}"]))


def segmentation_row(run: LoadedRun, key: str, image: np.ndarray, probs: np.ndarray, out_dir, stem: str | None = None, report: str | None = None) -> dict:
    """Lesion pixel count, fraction, top probability and the threshold applied for one input (a report-guided run given no
    ``report``: its no-report threshold); with ``out_dir`` its mask and overlay PNGs."""
    from ..evaluation.seg_outputs import overlay_mask_figure, safe_stem, save_mask_png

    thresholds = run.thresholds_for(report)
    label = run.task.masks(probs[None], thresholds, run.classes)[0]
    row = {"lesion_pixels": int((label > 0).sum()), "lesion_fraction": float((label > 0).mean()), "max_lesion_prob": float(probs[1:].max()) if len(probs) > 1 else 0.0,
           "threshold": float(thresholds.get(run.classes[-1], 0.5))}
    if out_dir is not None:
        import matplotlib.pyplot as plt

        out = Path(out_dir)
        stem = stem or safe_stem(key)
        save_mask_png(out / "masks" / f"{stem}.png", label, run.synthetic)
        fig = overlay_mask_figure(image, None, label, f"predicted lesions: {row['lesion_pixels']} px" + (" -- SYNTHETIC data" if run.synthetic else ""))
        (out / "overlays").mkdir(parents=True, exist_ok=True)
        fig.savefig(out / "overlays" / f"{stem}.png")
        plt.close(fig)
        row.update(mask_png=str(out / "masks" / f"{stem}.png"), overlay_png=str(out / "overlays" / f"{stem}.png"))
    return row


def write_prediction_rows(rows: Sequence[dict], out: str | Path) -> Path:
    """CSV or JSON by the suffix of ``out``, written to a temporary name and moved into place (a failure leaves the old file)."""
    out = Path(out)
    with atomic_path(out) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        if out.suffix.lower() == ".json":
            fh.write(json.dumps(list(rows), indent=2))
        else:
            fields = list(dict.fromkeys(k for r in rows for k in r))
            fields = ["path"] + [f for f in fields if f not in ("path", "warning", "error")] + ["warning", "error"]
            w = csv.DictWriter(fh, fieldnames=fields)
            w.writeheader()
            for r in rows:
                w.writerow(r)
    return out
