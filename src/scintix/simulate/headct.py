"""Axial non-contrast head-CT slices in Hounsfield units (P5): finding vs no finding.

A slice is an elliptical head: scalp (~40 HU), skull (cortical bone, 700-1500
HU), brain (grey ~38 HU, white ~26 HU), CSF in the ventricles and sulci
(~6 HU), air outside (-1000 HU), plus Gaussian noise of a few HU. Findings are
acute haemorrhages, hyperdense against brain:

* **intraparenchymal** -- a 55-80 HU blob inside a lobe;
* **subdural** -- a 50-75 HU crescent along the inner table of the skull.

Each finding has a mask and is named (type, side, lobe) in the report. The
simulator is for exercising the P5 pipeline; real head CT is far richer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .reports import SYNTHETIC_EN, SYNTHETIC_ZH
from .scan import SimulatedScan, SiteFinding

__all__ = ["HEADCT_FEATURES", "simulate_headct_slice"]

HEADCT_FEATURES = ("finding",)
LOBES = {"frontal": ("额叶", -0.45), "parietal": ("顶叶", 0.05), "occipital": ("枕叶", 0.55)}


@dataclass
class CTFinding(SiteFinding):
    """An acute haemorrhage (kind: intraparenchymal haemorrhage | subdural haematoma), in pixels."""

    x_px: float
    y_px: float
    size_px: float


def simulate_headct_slice(rng: np.random.Generator, features: set[str], size: int = 256) -> SimulatedScan:
    """One axial slice (``size`` x ``size``, ~0.9 mm pixels at 256) with or without a haemorrhage."""
    unknown = set(features) - set(HEADCT_FEATURES)
    if unknown:
        raise ValueError(f"unknown head-CT features {sorted(unknown)}; use {HEADCT_FEATURES}")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = size / 2 + rng.normal(0, 4), size / 2 + rng.normal(0, 4)
    ry, rx = size * rng.uniform(0.36, 0.42), size * rng.uniform(0.29, 0.34)
    r = np.hypot((yy - cy) / ry, (xx - cx) / rx)
    thick = rng.uniform(0.05, 0.08)
    hu = np.full((size, size), -1000.0, np.float32)
    hu[r < 1.0] = 40.0  # scalp
    skull = (r < 0.96) & (r >= 0.96 - thick)
    hu[skull] = rng.uniform(700, 1500)
    brain = r < 0.96 - thick
    # grey/white matter texture, ventricles, sulci
    texture = gaussian_filter(rng.normal(0, 1, (size, size)), 3)
    hu[brain] = np.where(texture[brain] > 0.1, 38.0, 26.0)
    for s in (-1, 1):
        vent = np.hypot((yy - cy + 0.02 * size) / (0.13 * size), (xx - cx - s * 0.05 * size) / (0.03 * size)) < 1
        hu[vent & brain] = 6.0
    rim = brain & (r > 0.96 - thick - 0.03)
    hu[rim & (texture > 0.6)] = 8.0
    mask = np.zeros((size, size), np.uint8)
    findings: list[CTFinding] = []
    if "finding" in features:
        side = str(rng.choice(["right", "left"]))
        sgn = -1 if side == "right" else 1  # radiological convention: patient's right on the image left
        lobe = str(rng.choice(list(LOBES)))
        fy = cy + LOBES[lobe][1] * ry * 0.8
        if rng.random() < 0.5:
            fx = cx + sgn * rng.uniform(0.25, 0.5) * rx
            rad = rng.uniform(0.03, 0.07) * size
            blob = (np.hypot(yy - fy, xx - fx) < rad) & brain
            hu[blob] = rng.uniform(55, 80)
            kind = "intraparenchymal haemorrhage"
            m = blob
        else:
            inner = 0.96 - thick
            ang = np.arctan2(yy - cy, (xx - cx) * sgn)
            centre = np.arctan2(fy - cy, rx)
            span = rng.uniform(0.4, 0.9)
            depth = rng.uniform(0.03, 0.07)
            m = brain & (r > inner - depth) & (np.abs(ang - centre) < span) & ((xx - cx) * sgn > 0)
            hu[m] = rng.uniform(50, 75)
            kind = "subdural haematoma"
            fx = float(np.mean(xx[m])) if m.any() else cx
        if m.any():
            mask[m] = 1
            side_zh = "右侧" if side == "right" else "左侧"
            findings.append(CTFinding(1, kind, f"{side} {lobe} region", f"{side_zh}{LOBES[lobe][0]}区", side, float(fx), float(fy), float(np.sqrt(m.sum()))))
    hu = hu + rng.normal(0, rng.uniform(3, 6), hu.shape).astype(np.float32)
    labels = ["finding"] if findings else ["no_finding"]
    if findings:
        f = findings[0]
        en = f"{SYNTHETIC_EN} Non-contrast head CT, axial slice. Acute {f.kind} (hyperdense) in the {f.site}. Impression: acute intracranial haemorrhage."
        zh = f"{SYNTHETIC_ZH}头颅CT平扫轴位。{f.site_zh}见急性{'脑实质内出血' if 'intra' in f.kind else '硬膜下血肿'}（高密度）。印象：急性颅内出血。"
    else:
        en = f"{SYNTHETIC_EN} Non-contrast head CT, axial slice. No intracranial haemorrhage, mass effect or midline shift. Impression: no acute finding."
        zh = f"{SYNTHETIC_ZH}头颅CT平扫轴位。未见颅内出血、占位效应及中线移位。印象：未见急性病变。"
    return SimulatedScan({"axial": hu}, {"axial": mask}, findings, labels, en, zh, {"pixel_mm": 0.9 * 256 / size, "head_radii_px": (round(float(ry), 1), round(float(rx), 1))})
