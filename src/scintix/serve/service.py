"""What the API computes for one stored upload, without HTTP: served runs, their operating points, predictions, heat maps as PNG.

Responses carry no patient name, ID or birth date: results are keyed by view
(``ant``, ``post``, ``image``), never by the file or the patient.
"""

from __future__ import annotations

import base64
import dataclasses
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.base import split_fragment
from ..data.manifest import load_inputs
from ..inference.onnx import with_engine
from ..inference.predict import predict_units, write_row_dicom
from ..runfolder import LoadedRun, load_run, read_json
from ..transforms.functional import (  # heatmap_rgba: the page lays it over the image with its opacity slider
    heatmap_rgba,
    resize_pad_box,
    to_uint8,
)

__all__ = ["ServedRun", "load_served", "choose_layout", "analyse", "dicom_outputs", "png_base64", "heatmap_rgba", "VIEWS"]

VIEWS = ("ant", "post")


@dataclass
class ServedRun:
    """A run loaded once at start-up, with what the page shows beside a prediction."""

    id: str
    run: LoadedRun
    info: dict
    lock: threading.Lock = field(default_factory=threading.Lock)  # one request at a time per model: CAM hooks are per model


def _operating_point(run_dir: Path, classes: list[str]) -> dict:
    """Test-split sensitivity and specificity (with CIs) at the validation threshold, per class; {} when not evaluated."""
    path = run_dir / "eval" / "test" / "metrics.json"
    if not path.is_file():
        return {}
    per = read_json(path).get("per_class", {})
    out = {}
    for c in classes:
        m = per.get(c) or {}
        if "recall" in m:
            out[c] = {k: m[src] for k, src in (("sensitivity", "recall"), ("specificity", "specificity"), ("roc_auc", "roc_auc")) if src in m}
    return out


def choose_layout(run: LoadedRun, setting: str | bool = "auto") -> bool:
    """Put a torch model in channels-last memory layout when that is faster for one scan on this machine (timed at start-up,
    as training does; ``setting`` true/false forces it). Returns whether it did."""
    import torch

    from ..runfolder import in_channels
    from ..runtime import autocast, choose_channels_last

    def step(model, x):
        with torch.no_grad(), autocast(run.device, run.amp):
            model(x)

    x = torch.zeros(1, in_channels(run.cfg), *run.cfg.data.image_size, device=run.device)
    use = choose_channels_last(setting, run.model, x, step)
    if use:
        run.model.to(memory_format=torch.channels_last)
    return use


def load_served(run_dirs, engine: str = "torch", channels_last: str | bool = "auto") -> dict[str, ServedRun]:
    """Each run loaded once (ids are folder names, made unique); a run that cannot be loaded is a one-line error naming it."""
    served: dict[str, ServedRun] = {}
    for d in run_dirs:
        d = Path(d)
        run = with_engine(load_run(d), engine)
        layout = "channels_last" if engine == "torch" and choose_layout(run, channels_last) else "contiguous"
        rid, n = d.name, 2
        while rid in served:
            rid, n = f"{d.name}-{n}", n + 1
        info = {"id": rid, "model": run.cfg.model.name, "task": run.cfg.data.task, "dense": run.task.dense, "classes": run.classes, "thresholds": run.thresholds,
                "temperature": run.temperature, "synthetic": run.synthetic, "engine": engine, "image_size": list(run.cfg.data.image_size),
                "views": list(run.cfg.data.views or []), "view_filter": run.cfg.data.view_filter, "region": run.cfg.data.region, "operating_point": _operating_point(run.run_dir, run.classes),
                "explainable": engine == "torch", "memory_layout": layout}
        served[rid] = ServedRun(rid, run, info)
    return served


def png_base64(rgb_or_grey: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb_or_grey)).save(buf, format="PNG", compress_level=1)  # 5x faster than the default 6, files ~20 % larger
    return base64.b64encode(buf.getvalue()).decode("ascii")


def analyse(served: ServedRun, path: Path, method: str | None = None, view: str | None = None, report: str | None = None) -> dict:
    """Predict (and with ``method`` explain) one stored upload: one result per view, each with its image, and heat map or mask, as PNG.

    ``view`` (ant/post) names the view of a single-view upload whose header does not (a PNG). Whole-body views carry their body
    regions; for a model of one region (``data.region``) the result also holds the whole view (``source_png``) and the box the
    model read (``crop_box``), since its image is only that crop. ``report``: the scan's report, read by a text-guided
    run (without one it uses its image path alone); other runs ignore it.
    """
    run = served.run
    arrays: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    crops: dict[str, list[dict]] = {}
    records = load_inputs(path)
    if view:
        records = [dataclasses.replace(r, view=r.view or view) for r in records]
    explain = bool(method) and not run.task.dense
    if explain and not served.info["explainable"]:
        raise ValueError("heat maps need the torch engine; this server runs ONNX")
    with served.lock:
        forward, maps_of = _one_pass(served, method) if explain else (None, None)
        rows = predict_units(run, records, arrays_out=arrays, probs_out=probs, crops_out=crops, forward=forward, report=(report or "").strip() or None)
    ok = [r for r in rows if not r.get("error")]
    maps = maps_of(list(arrays)) if explain else None
    named = {r.path: r.view for r in records if r.view}  # a single-view file whose header names its view
    results = []
    for r in ok:
        key = r["path"]
        arr = arrays[key]
        res = {"view": named.get(key) or _view_name(key), "warning": r.get("warning", ""), "image_png": png_base64(to_uint8(arr[0]))}
        res.update(_regions(crops.get(key), arr.shape[1:]))
        if run.task.dense:
            label = run.task.masks(probs[key][None], run.thresholds_for(r.get("report")), run.classes)[0]  # no report: the no-report threshold
            mask = np.zeros(label.shape + (4,), np.uint8)
            mask[label > 0] = (255, 0, 0, 255)
            res["mask_png"] = png_base64(mask)
            res.update({k: r[k] for k in ("lesion_pixels", "lesion_fraction", "max_lesion_prob", "threshold")})
            if "report" in r:  # a text-guided run: whether it read a report (no: its image path alone)
                res["read_report"] = bool(r["report"])
        else:
            res["probabilities"] = {c: r[f"prob_{c}"] for c in run.classes}
            res["predicted"] = r["predicted"]
        if maps is not None:
            res["method"] = method
            res["heatmap_png"] = png_base64(heatmap_rgba(maps[key]))
        results.append(res)
    errors = [{"view": named.get(r["path"]) or _view_name(r["path"]), "error": _anonymous(r["error"], path)} for r in rows if r.get("error")]
    return {"model": served.id, "synthetic": run.synthetic, "results": results, "errors": errors,
            "thresholds": run.thresholds, "operating_point": served.info["operating_point"]}


def _one_pass(served: ServedRun, method: str):
    """A ``forward`` for :func:`predict_units` that makes the heat maps in the prediction's own pass (one forward, not two),
    and a function from the keys (in batch order) to their maps. The maps are computed at the run's inference precision
    (bf16 where the CPU has it): they explain the very computation whose probability the page shows."""
    from ..explain.run import make_cam

    cam = make_cam(served.run, method)
    batches: list[np.ndarray] = []

    def forward(x):
        maps, _ = cam(x)
        batches.append(maps)
        return cam.logits

    def maps_of(keys: list[str]) -> dict[str, np.ndarray]:
        return dict(zip(keys, np.concatenate(batches))) if batches else {}

    return forward, maps_of


def dicom_outputs(served: ServedRun, path: Path, out_dir: Path, deidentify: bool = False, method: str | None = None) -> list[dict]:
    """Prediction rows for one DICOM upload, each with its DICOM outputs in ``out_dir`` (``dicom_files``; see
    :func:`~scintix.inference.dicom_out.write_for_prediction`); with ``method`` a classifier's heat map goes in as a Secondary Capture."""
    run = served.run
    if run.cfg.data.views or not method or run.task.dense:
        with served.lock:
            return predict_units(run, path, dicom_dir=out_dir, deidentify=deidentify)
    from ..evaluation.seg_outputs import unique_stems

    arrays: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    crops: dict[str, list[dict]] = {}
    with served.lock:
        forward, maps_of = _one_pass(served, method)
        rows = predict_units(run, path, arrays_out=arrays, probs_out=probs, crops_out=crops, forward=forward)
    maps = maps_of(list(arrays))
    ok = [r for r in rows if not r.get("error") and r.get("predicted")]
    stems = unique_stems([r["path"] for r in ok])
    for r in ok:
        key, cam = r["path"], maps[r["path"]]
        box = crops[key][0]["box"] if run.cfg.data.region and key in crops else None
        write_row_dicom(run, key, arrays[key], probs[key], r, out_dir, stems[key], deidentify, box=box, heatmap=cam)
    return rows


def _view_name(key: str) -> str:
    return split_fragment(key)[1] or "image"


def _regions(found: list[dict] | None, input_shape: tuple[int, int]) -> dict:
    """Body-region boxes for the page, (y0, x0, y1, x1): on the whole view (``source_png``) when the model read a crop of it,
    else moved onto the model's input image; {} for images that are not whole-body views."""
    if not found or len(found) != 1:  # view-stacking runs: several sources per image; no boxes drawn
        return {}
    f = found[0]
    if f["box"] is not None:
        return {"source_png": png_base64(to_uint8(f["image"])), "crop_box": list(f["box"]), "regions": {k: list(b) for k, b in f["regions"].items()}}
    return {"regions": {k: list(resize_pad_box(b, f["shape"], input_shape)) for k, b in f["regions"].items()}}


def _anonymous(message: str, path: Path) -> str:
    """An error line without the server's temporary path."""
    return message.replace(str(path), "upload")

