"""Write a simulated dataset: images, masks, per-case JSON (findings, boxes, reports) and a manifest.

The manifest is the one the training pipeline reads (one row per view, a
``;``-joined multi-label ``label``, ``patient_id``, ``view``, ``report``,
``mask``), so ``scintix simulate -> scintix run`` needs no glue. Extra columns
give each label as 0/1 (``metastasis``, ``arthritis``, ... usable with
``data.label_column``), the Chinese report, the thorax box and ``synthetic=1``.
Bone scans also get ``mask_metastasis`` (metastases only, 0/1: what to
segment when benign uptake is simulated beside them; ``data.mask_column``).

Case ``i`` is drawn from ``numpy.random.default_rng([seed, i])``: the same
seed gives the same bytes, and case ``i`` does not depend on how many cases
are made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.manifest import Record, write_manifest
from .bone import BONE_LABELS, simulate_bone_scan
from .headct import HEADCT_FEATURES, simulate_headct_slice
from .reports import SYNTHETIC_EN
from .thyroid import THYROID_FEATURES, simulate_thyroid_scan

__all__ = ["SimulateConfig", "simulate_dataset", "draw_labels", "DEFAULT_PREVALENCE"]

DEFAULT_PREVALENCE = {
    "bone": {"metastasis": 0.35, "arthritis": 0.25},
    "thyroid": {"diffuse": 0.3, "hot_nodule": 0.25, "cold_nodule": 0.25},
    "headct": {"finding": 0.4},
}


@dataclass(frozen=True)
class SimulateConfig:
    mode: str = "bone"  # bone (whole-body ANT+POST) | thyroid | headct (axial CT slices in HU, P5)
    n: int = 100  # cases (patients)
    seed: int = 0
    counts: float | None = None  # total counts per view; None = 1.5e6 (bone) / 2e5 (thyroid)
    prevalence: dict[str, float] = field(default_factory=dict)  # per label, independent; empty = defaults
    format: str = "png"  # png (16-bit counts) | dicom (one multi-frame NM file per case) | npy
    max_cross: float | None = None  # thyroid: cap on the fraction of cross-feature (>= 2 features) cases


def draw_labels(rng: np.random.Generator, prevalence: dict[str, float]) -> set[str]:
    """Each label independently with its prevalence (so co-occurrence is the product)."""
    return {k for k, p in prevalence.items() if rng.random() < p}


def _save_png16(path: Path, arr: np.ndarray) -> None:
    from PIL import Image, PngImagePlugin

    if arr.max() > 65535:
        raise ValueError(f"{path}: counts above 65535 do not fit a 16-bit PNG; use format=npy or dicom")
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SYNTHETIC_EN)
    Image.fromarray(arr.astype(np.uint16)).save(path, pnginfo=info)


def _save_png8(path: Path, arr: np.ndarray) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SYNTHETIC_EN)
    Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8)).save(path, pnginfo=info)


def _save_mask(path: Path, mask: np.ndarray, meaning: str = "pixel value = finding id in the case JSON.") -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", SYNTHETIC_EN + " Lesion mask: " + meaning)
    Image.fromarray(mask.astype(np.uint8)).save(path, pnginfo=info)


def simulate_dataset(out_dir: str | Path, cfg: SimulateConfig = SimulateConfig(), progress: bool = False) -> Path:
    """Simulate ``cfg.n`` cases into ``out_dir``; returns the manifest path."""
    if cfg.mode not in DEFAULT_PREVALENCE:
        raise ValueError(f"unknown mode {cfg.mode!r}; use bone, thyroid or headct")
    if cfg.format not in ("png", "dicom", "npy"):
        raise ValueError(f"unknown format {cfg.format!r}; use png, dicom or npy")
    prevalence = dict(DEFAULT_PREVALENCE[cfg.mode], **cfg.prevalence)
    known = {"bone": BONE_LABELS[1:], "thyroid": THYROID_FEATURES, "headct": HEADCT_FEATURES}[cfg.mode]
    bad = sorted(set(prevalence) - set(known))
    if bad:
        raise ValueError(f"unknown labels {bad} for mode {cfg.mode}; known: {list(known)}")
    out = Path(out_dir)
    for sub in ("images", "masks", "masks_class", "cases", *(("masks_metastasis",) if cfg.mode == "bone" else ())):
        (out / sub).mkdir(parents=True, exist_ok=True)
    counts = cfg.counts or (1.5e6 if cfg.mode == "bone" else 2e5)
    label_names = list(known)
    records = []
    it = range(cfg.n)
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"simulate {cfg.mode}", disable=None)
    for i in it:
        rng = np.random.default_rng([cfg.seed, i])
        labels = draw_labels(rng, prevalence)
        if cfg.mode == "thyroid" and cfg.max_cross is not None and len(labels) >= 2 and rng.random() > cfg.max_cross:
            labels = {sorted(labels)[int(rng.integers(len(labels)))]}
        if cfg.mode == "bone":
            scan = simulate_bone_scan(rng, labels, counts)
        elif cfg.mode == "thyroid":
            scan = simulate_thyroid_scan(rng, labels, counts)
        else:
            scan = simulate_headct_slice(rng, labels)
        # other seeds are other patients: their ids differ too, so two simulated sets never claim a patient in common
        pid = f"SIM{cfg.mode[0].upper()}{i:05d}" if cfg.seed == 0 else f"SIM{cfg.mode[0].upper()}s{cfg.seed}-{i:05d}"
        summary = scan.summary()
        summary.update(case=pid, mode=cfg.mode, seed=cfg.seed, index=i)
        (out / "cases" / f"{pid}.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1), encoding="utf-8")
        if cfg.format == "dicom" and cfg.mode == "headct":
            from ..data.dicom_write import write_ct

            write_ct(out / "images" / f"{pid}.dcm", scan.views["axial"], (scan.params["pixel_mm"],) * 2, pid, comments=SYNTHETIC_EN)
        elif cfg.format == "dicom":
            from ..data.dicom_write import write_nm

            write_nm(out / "images" / f"{pid}.dcm", scan.views, (scan.params["pixel_mm"],) * 2, pid, f"SYNTHETIC {cfg.mode} scan", SYNTHETIC_EN)
        extra_base = {"synthetic": "1", **{k: str(int(k in scan.labels)) for k in label_names}, "n_findings": str(len(scan.findings)), "report_zh": scan.report_zh}
        class_masks = scan.class_masks(label_names)
        for view, img in scan.views.items():
            mask_rel = Path("masks") / f"{pid}_{view}.png"
            _save_mask(out / mask_rel, scan.masks[view])
            _save_mask(out / "masks_class" / f"{pid}_{view}.png", class_masks[view], f"pixel value = class index (0 background, {', '.join(f'{i + 1} {c}' for i, c in enumerate(label_names))}).")
            if cfg.format == "png" and cfg.mode == "headct":  # CT exported as 8-bit brain-window PNG, as PACS exports do
                from ..data.dicom import apply_window

                rel = f"images/{pid}.png"
                _save_png8(out / rel, apply_window(img, "brain") * 255)
            elif cfg.format == "dicom" and cfg.mode == "headct":
                rel = f"images/{pid}.dcm"
            elif cfg.format == "png":
                rel = f"images/{pid}_{view}.png"
                _save_png16(out / rel, img)
            elif cfg.format == "npy":
                rel = f"images/{pid}_{view}.npy"
                np.save(out / rel, img)
            else:
                rel = f"images/{pid}.dcm#{view}"
            extra = dict(extra_base, mask_class=str(out / "masks_class" / f"{pid}_{view}.png"))
            if cfg.mode == "bone":
                extra["box_thorax"] = " ".join(str(v) for v in scan.boxes[view]["thorax"])
                met = out / "masks_metastasis" / f"{pid}_{view}.png"
                _save_mask(met, class_masks[view] == label_names.index("metastasis") + 1, "1 = metastasis (benign uptake and arthritis are 0).")
                extra["mask_metastasis"] = str(met)
            records.append(Record(path=str(out / rel), label=";".join(scan.labels), patient_id=pid, view=view, report=scan.report_en, mask=str(out / mask_rel), extra=extra))
    manifest = write_manifest(records, out / "manifest.csv", relative_to=out)
    _write_readme(out, cfg, prevalence, counts, records)
    return manifest


def _write_readme(out: Path, cfg: SimulateConfig, prevalence: dict, counts: float, records: list[Record]) -> None:
    from collections import Counter

    per_case = {r.patient_id: r.label for r in records}
    tally = Counter(per_case.values())
    what = {"bone": "whole-body planar bone scans, anterior + posterior, 1024 x 256, 2.26 mm pixels", "thyroid": "anterior thyroid scans, 128 x 128, 1 mm pixels",
            "headct": "axial non-contrast head-CT slices, 256 x 256, HU (PNG: brain window, 8-bit)"}[cfg.mode]
    lines = [
        f"# SYNTHETIC data -- {SYNTHETIC_EN}",
        "",
        f"{len(per_case)} simulated {what}; seed {cfg.seed}; about {counts:.3g} counts per view; format {cfg.format}.",
        f"Label prevalence (independent per label): {prevalence}.",
        "",
        "Cases by label set: " + ", ".join(f"{k}: {v}" for k, v in sorted(tally.items())),
        "",
        "Files: `images/` counts (16-bit PNG / npy / NM DICOM), `masks/` lesion masks (pixel value = finding id), `masks_class/` the same with pixel value = class index (manifest column `mask_class`),"
        + (" `masks_metastasis/` metastases only, 0/1 (column `mask_metastasis`)," if cfg.mode == "bone" else ""),
        "`cases/<id>.json` findings (site, kind, position), region boxes (y0, x0, y1, x1) per view and the English",
        "and Chinese reports, `manifest.csv` for `scintix run --data <this folder>`.",
        "",
        "Made with `scintix simulate`. Nothing measured on it says anything about real patients.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
