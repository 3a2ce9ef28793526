"""Does a classifier keep its AUC on super-resolved images? (P3 feeds SRGAN output to its classifier.)

For the SR run's held-out split (real scans the SR generator never saw), each
image is classified three times by a trained scintix classifier: as it is
(the original, at ``data.image_size``), down-sampled by ``sr.scale`` and
restored by bicubic interpolation, and down-sampled and restored by the SR
generator. Reported: the classifier's ROC-AUC on each, and the paired
differences (SR - original, bicubic - original, SR - bicubic) with
patient-level bootstrap CIs; per evaluated class (binary: the positive class).

The classifier must read images exactly as the SR run makes them (same size,
normalisation, channels and class names), and none of the evaluated patients
may be in its training or validation split (its ``split.csv``): an AUC on
patients it learned from says nothing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

from ..data.prepare import prepare_data
from ..evaluation.bootstrap import paired_auc_difference
from ..evaluation.metrics import roc_auc
from ..runtime import resolve_device
from .srgan import bicubic, downsample
from .train_sr import load_sr, split_images

__all__ = ["classifier_on_sr"]

INPUTS = ("original", "bicubic", "sr")


def _check_compatible(sr_cfg, cls_cfg, sr_run: Path, cls_run: Path, channels: int) -> None:
    from ..runfolder import in_channels

    a, b = sr_cfg.data, cls_cfg.data
    for field in ("image_size", "normalize", "percentiles", "windows"):
        if getattr(a, field) != getattr(b, field):
            raise ValueError(f"{cls_run}: classifier reads data.{field}={getattr(b, field)!r}, the SR run {sr_run} makes {getattr(a, field)!r}; "
                             "train the SR run with the classifier's recipe")
    if in_channels(cls_cfg) != channels:
        raise ValueError(f"{cls_run}: classifier takes {in_channels(cls_cfg)} channel(s), the SR run {sr_run} makes {channels}")


def _leaked_patients(cls_run: Path, patients: set[str]) -> list[str]:
    split = cls_run / "split.csv"
    if not split.is_file():
        raise FileNotFoundError(f"{cls_run}: no split.csv, so the patients the classifier learned from are unknown")
    with open(split, newline="", encoding="utf-8") as fh:
        seen = {r["patient_id"] for r in csv.DictReader(fh) if r["split"] in ("train", "val")}
    return sorted(patients & seen)


@torch.no_grad()
def _batched(fn, x: torch.Tensor, device, batch: int = 64) -> torch.Tensor:
    """``fn`` over ``x`` in batches on ``device``; the result back on the CPU."""
    return torch.cat([fn(x[i : i + batch].to(device)).float().cpu() for i in range(0, len(x), batch)])


def classifier_on_sr(sr_run: str | Path, classifier_run: str | Path, split: str = "test", n_boot: int = 1000, seed: int = 0) -> dict:
    """The classifier's AUC on original, bicubic-restored and SR-restored images of ``split``; writes ``eval_<split>_classifier.json``."""
    from ..runfolder import load_run

    sr_run, classifier_run = Path(sr_run), Path(classifier_run)
    device = resolve_device("auto")
    gen, cfg = load_sr(sr_run, device)
    run = load_run(classifier_run)
    if run.task.dense:
        raise ValueError(f"{classifier_run}: a {run.cfg.data.task} run; the SR check needs a classifier")
    data = prepare_data(cfg, sr_run, write=False)
    hr, samples = split_images(cfg, data, split)
    if not len(hr):
        raise ValueError(f"{sr_run}: no {split} images")
    _check_compatible(cfg, run.cfg, sr_run, classifier_run, int(hr.shape[1]))
    if list(data.classes) != list(run.classes):
        raise ValueError(f"{classifier_run}: classes {run.classes} differ from the SR run's data classes {data.classes}")
    pids = [s.patient_id for s in samples]
    leak = _leaked_patients(classifier_run, set(pids))
    if leak:
        raise ValueError(f"{classifier_run}: {len(leak)} of the SR run's {split} patients (e.g. {leak[0]}) are in the classifier's train/val split; "
                         "use a classifier trained on the same split (data.split.file=<SR run>/split.csv)")
    low = _batched(lambda x: downsample(x, cfg.sr.scale), hr, device)
    inputs = {"original": hr, "bicubic": _batched(lambda x: bicubic(x, cfg.sr.scale).clamp(0, 1), low, device),
              "sr": _batched(lambda x: gen(x).clamp(0, 1), low, device)}
    probs = {k: _batched(lambda x: run.task.activation(run.model(x) / run.temperature), v, device).numpy() for k, v in inputs.items()}
    k = len(run.classes)
    y = run.task.one_hot(np.stack([np.asarray(s.target) for s in samples]), k)
    per_class = {}
    for c in run.task.columns(k):
        yc = y[:, c]
        if yc.min() == yc.max():
            per_class[run.classes[c]] = {"note": f"only one class present among the {split} images: AUC undefined"}
            continue
        entry = {f"auc_{name}": roc_auc(yc, probs[name][:, c]) for name in INPUTS}
        for a, b in (("sr", "original"), ("bicubic", "original"), ("sr", "bicubic")):
            entry[f"{a}_minus_{b}"] = paired_auc_difference(yc, probs[a][:, c], probs[b][:, c], pids, n_boot, 0.95, seed)
        entry["positives"] = int(yc.sum())
        per_class[run.classes[c]] = entry
    res = {"split": split, "images": len(hr), "patients": len(set(pids)), "scale": cfg.sr.scale, "classifier": str(classifier_run),
           "synthetic": bool(data.synthetic or run.synthetic), "per_class": per_class}
    (sr_run / f"eval_{split}_classifier.json").write_text(json.dumps(res, indent=2))
    return res
