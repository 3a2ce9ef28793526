"""What the API computes for one stored upload, without HTTP: served runs, their operating points, predictions, heat maps as PNG.

Responses carry no patient name, ID or birth date: results are keyed by view
(``ant``, ``post``, ``image``), never by the file or the patient.
"""

from __future__ import annotations

import base64
import io
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..inference.onnx import with_engine
from ..inference.predict import predict_units
from ..runfolder import LoadedRun, load_run, read_json
from ..transforms.functional import to_uint8

__all__ = ["ServedRun", "load_served", "analyse", "png_base64", "heatmap_rgba"]


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


def load_served(run_dirs, engine: str = "torch") -> dict[str, ServedRun]:
    """Each run loaded once (ids are folder names, made unique); a run that cannot be loaded is a one-line error naming it."""
    served: dict[str, ServedRun] = {}
    for d in run_dirs:
        d = Path(d)
        run = with_engine(load_run(d), engine)
        rid, n = d.name, 2
        while rid in served:
            rid, n = f"{d.name}-{n}", n + 1
        info = {"id": rid, "model": run.cfg.model.name, "task": run.cfg.data.task, "dense": run.task.dense, "classes": run.classes, "thresholds": run.thresholds,
                "temperature": run.temperature, "synthetic": run.synthetic, "engine": engine, "image_size": list(run.cfg.data.image_size),
                "views": list(run.cfg.data.views or []), "view_filter": run.cfg.data.view_filter, "operating_point": _operating_point(d, run.classes),
                "explainable": engine == "torch"}
        served[rid] = ServedRun(rid, run, info)
    return served


def png_base64(rgb_or_grey: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb_or_grey)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def heatmap_rgba(cam: np.ndarray) -> np.ndarray:
    """A [0, 1] map as RGBA (jet colours, alpha rising with the value): the page lays it over the image with its opacity slider."""
    from matplotlib import colormaps

    c = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float32)), 0, 1)
    rgba = colormaps["jet"](c)
    rgba[..., 3] = 0.25 + 0.75 * c
    return (rgba * 255).astype(np.uint8)


def analyse(served: ServedRun, path: Path, method: str | None = None) -> dict:
    """Predict (and with ``method`` explain) one stored upload: one result per view, each with its image, and heat map or mask, as PNG."""
    run = served.run
    arrays: dict[str, np.ndarray] = {}
    probs: dict[str, np.ndarray] = {}
    with served.lock:
        rows = predict_units(run, path, arrays_out=arrays, probs_out=probs)
        ok = [r for r in rows if not r.get("error")]
        maps = None
        if method and ok and not run.task.dense:
            if not served.info["explainable"]:
                raise ValueError("heat maps need the torch engine; this server runs ONNX")
            from ..explain.run import explain_arrays

            maps, _, _ = explain_arrays(run, [arrays[r["path"]] for r in ok], method)
    results = []
    for i, r in enumerate(ok):
        key = r["path"]
        arr = arrays[key]
        view = key.rsplit("#", 1)[1] if "#" in key and not Path(key).exists() else "image"
        res = {"view": view, "warning": r.get("warning", ""), "image_png": png_base64(to_uint8(arr[0]))}
        if run.task.dense:
            label = run.task.masks(probs[key][None], run.thresholds, run.classes)[0]
            mask = np.zeros(label.shape + (4,), np.uint8)
            mask[label > 0] = (255, 0, 0, 255)
            res["mask_png"] = png_base64(mask)
            res.update({k: r[k] for k in ("lesion_pixels", "lesion_fraction", "max_lesion_prob")})
        else:
            res["probabilities"] = {c: r[f"prob_{c}"] for c in run.classes}
            res["predicted"] = r["predicted"]
        if maps is not None:
            res["method"] = method
            res["heatmap_png"] = png_base64(heatmap_rgba(maps[i]))
        results.append(res)
    errors = [{"view": (r["path"].rsplit("#", 1)[1] if "#" in r["path"] else "image"), "error": _anonymous(r["error"], path)} for r in rows if r.get("error")]
    return {"model": served.id, "synthetic": run.synthetic, "results": results, "errors": errors,
            "thresholds": run.thresholds, "operating_point": served.info["operating_point"]}


def _anonymous(message: str, path: Path) -> str:
    """An error line without the server's temporary path."""
    return message.replace(str(path), "upload")

