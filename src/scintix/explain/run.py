"""``scintix explain``: heat-map overlays for a trained run on any image, folder or manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..inference.predict import LoadedRun, load_run, prepare_units
from ..runtime import autocast
from .cam import CAM_METHODS

__all__ = ["explain_arrays", "explain_paths", "channel_names"]


def channel_names(cfg) -> list[str]:
    views = list(cfg.data.views or [""])
    windows = list(cfg.data.windows or [""])
    return [" ".join(x for x in (v, w) if x) or "image" for v in views for w in windows]


def make_cam(run: LoadedRun, method: str):
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; known: {sorted(CAM_METHODS)}")
    return CAM_METHODS[method](run.model, task=run.cfg.data.task)


def _target_index(run: LoadedRun, target: str | None) -> int | None:
    if target is None:
        return None
    if target in run.classes:
        return run.classes.index(target)
    if target.isdigit() and int(target) < len(run.classes):
        return int(target)
    raise ValueError(f"target {target!r} is not one of the classes {run.classes}")


def explain_arrays(run: LoadedRun, arrays: Sequence[np.ndarray], method: str, target: str | None = None, batch_size: int = 8, targets: np.ndarray | None = None,
                   amp: bool = False, texts: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maps ``(N, H, W)``, targets ``(N,)`` and calibrated probabilities ``(N, K)`` for preprocessed inputs.

    ``target`` names one class for all inputs; ``targets`` gives one class index per input. ``amp=True`` runs
    the maps' forward and backward at the run's inference precision (bf16 on CPUs that have it: faster; how far the maps
    are from float32 ones is measured in benchmarks/serve_load.py); the default is float32. ``texts`` (a text-guided
    run): each input's report, explained one input at a time with its report bound to the model.
    """
    model = run.model
    if texts is not None:
        from .words import BoundText

        model, batch_size = BoundText(run.model), 1
    cam = CAM_METHODS[method](model, task=run.cfg.data.task) if method in CAM_METHODS else make_cam(run, method)
    t = _target_index(run, target)
    maps, used, probs = [], [], []
    for s in range(0, len(arrays), batch_size):
        if texts is not None:
            model.text = texts[s] or None
        x = torch.from_numpy(np.stack(arrays[s : s + batch_size])).to(run.device)
        with autocast(run.device, run.amp if amp else None):
            m, tt = cam(x, targets=t if targets is None else targets[s : s + batch_size])
        with torch.no_grad():
            probs.append(run.task.activation(model(x.float()) / run.temperature).cpu().numpy())
        maps.append(m)
        used.append(tt)
    if not maps:
        return np.zeros((0,)), np.zeros((0,), int), np.zeros((0, len(run.classes)))
    return np.concatenate(maps), np.concatenate(used), np.concatenate(probs)


def explain_paths(run_dir: str | Path, source, out_dir: str | Path, methods: Sequence[str] = ("gradcam",), target: str | None = None, batch_size: int = 8,
                  report: str | None = None) -> list[dict]:
    """Write one overlay PNG per input and method; rows say what was written or why not.

    Segmentation runs also write, per input, the predicted mask (``masks/``) and
    its overlay (``overlays/``); their heat maps explain the lesion class (or
    ``target``) over the pixels predicted as that class. A text-guided run reads
    each input's report (``report`` for all when given) and, for an input with
    one, also writes ``<stem>_words.html``: the report's words shaded by the
    decoder's attention over the predicted lesion (:mod:`.words`).
    """
    from ..data.manifest import load_inputs
    from ..evaluation.seg_outputs import unique_stems
    from ..inference.predict import segmentation_row, unit_reports
    from .overlay import save_overlay

    run = load_run(run_dir)
    task, classes = run.task, run.classes
    records = load_inputs(source) if not isinstance(source, (list, tuple)) else list(source)
    keys, arrays, rows = prepare_units(run.cfg, records)
    by_key = unit_reports(run.cfg, records, report) if "text" in getattr(run.model, "inputs", ()) else None
    texts = [by_key.get(k, "") for k in keys] if by_key is not None else None
    stems = unique_stems(keys)  # same-named files in different folders get different overlays
    out = Path(out_dir)
    names = channel_names(run.cfg)
    cmap = "gray" if run.cfg.data.windows else "gray_r"
    tag = "  -- SYNTHETIC data" if run.synthetic else ""
    seg = {}
    for method in methods:
        maps, targets, probs = explain_arrays(run, arrays, method, target, batch_size, texts=texts)
        for i, (key, arr, m, t, p) in enumerate(zip(keys, arrays, maps, targets, probs)):
            png = out / f"{stems[key]}_{method.replace('+', 'p')}.png"
            if task.dense:
                if key not in seg:  # the mask and its overlay, once per input
                    seg[key] = segmentation_row(run, key, arr, p, out, stems[key], texts[i] if texts is not None else None)
                info = seg[key]
                title = f"{method}: {info['lesion_pixels']} px predicted {classes[1] if len(classes) > 1 else ''}; map explains '{classes[t]}'{tag}"
                row = {"path": key, "method": method, "target": classes[t], **info}
                if texts is not None:
                    row.update(report=texts[i], **_words(run, key, arr, p, texts[i], out / f"{stems[key]}_words.html", tag))
            else:
                pred = task.decide(p, run.thresholds, classes)
                title = f"{method}: predicted {pred} (p[{classes[t]}] = {p[t]:.2f}); map explains '{classes[t]}'{tag}"
                row = {"path": key, "method": method, "target": classes[t], "prob": float(p[t]), "predicted": pred}
            save_overlay(png, arr, m, title, names, cmap)
            rows.append({**row, "png": str(png), "error": ""})
    return rows


def _words(run: LoadedRun, key: str, arr: np.ndarray, probs: np.ndarray, text: str, path: Path, tag: str) -> dict:
    """The word-attention page for one input of a text-guided run, or why there is none."""
    from .words import word_attention, write_words_html

    if not text:
        return {"words_html": "", "top_words": "", "words_note": "no report: the image path alone was used"}
    try:
        lesion = run.task.masks(probs[None], run.thresholds, run.classes)[0] > 0
        res = word_attention(run.model, arr, text, run.device, lesion)
    except ValueError as exc:
        return {"words_html": "", "top_words": "", "words_note": str(exc)}
    write_words_html(path, res, f"{Path(key.split('|')[0]).name}: report words the decoder attended to{tag}")
    top = np.argsort(-np.asarray(res["weights"]))[:5]
    return {"words_html": str(path), "top_words": " ".join(res["tokens"][j] for j in top), "words_note": ""}
