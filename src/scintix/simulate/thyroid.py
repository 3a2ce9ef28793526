"""Anterior pinhole thyroid scans (P3): normal, diffuse hyperfunction, hot and cold nodules, mixed.

The gland is two rotated elliptical lobes joined by an isthmus, with faint
salivary glands above and a soft-tissue background. Features:

* **diffuse** -- enlarged gland (x1.25-1.6), uptake 2.5-4x normal, lower
  background: diffuse hyperfunction (Graves-like).
* **hot_nodule** -- a focal hyperfunctioning nodule (8-16 mm) in one lobe,
  often with the rest of the gland suppressed.
* **cold_nodule** -- a photopenic defect (8-18 mm) in one lobe.

Scans with two or more features are the *cross-feature* cases of P3's second
training stage. Pixel size 1 mm, 128 x 128 by default.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .reports import thyroid_report
from .scan import SimulatedScan, SiteFinding

__all__ = ["THYROID_FEATURES", "simulate_thyroid_scan"]

THYROID_FEATURES = ("diffuse", "hot_nodule", "cold_nodule")
POLES = {"upper pole": ("上极", -0.45), "mid portion": ("中部", 0.0), "lower pole": ("下极", 0.45)}


@dataclass
class ThyroidFinding(SiteFinding):
    x_mm: float
    y_mm: float
    radius_mm: float


def _lobe(xx, yy, cx, cy, rx, ry, angle):
    c, s = np.cos(angle), np.sin(angle)
    u, v = (xx - cx) * c + (yy - cy) * s, -(xx - cx) * s + (yy - cy) * c
    return np.clip((1 - np.hypot(u / rx, v / ry)) * min(rx, ry) + 0.5, 0, 1)


def simulate_thyroid_scan(rng: np.random.Generator, features: set[str], counts: float = 2e5, size: int = 128) -> SimulatedScan:
    """One anterior thyroid scan with the given features (empty set = normal)."""
    unknown = set(features) - set(THYROID_FEATURES)
    if unknown:
        raise ValueError(f"unknown thyroid features {sorted(unknown)}; use {THYROID_FEATURES}")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = size / 2 + rng.normal(0, 3), size / 2 + rng.normal(4, 3)  # 1 mm pixels; patient's right on the viewer's left
    grow = rng.uniform(1.25, 1.6) if "diffuse" in features else rng.uniform(0.9, 1.1)
    rx, ry = 9.0 * grow * rng.uniform(0.9, 1.1), 22.0 * grow * rng.uniform(0.9, 1.1)
    sep = 16.0 * grow
    lobes = {}
    for side, sgn in (("right", -1.0), ("left", 1.0)):
        lx = cx + sgn * sep * rng.uniform(0.95, 1.05)
        ang = -sgn * np.deg2rad(rng.uniform(8, 20))  # upper poles lateral: the lobes form a V
        lobes[side] = (lx, cy + rng.normal(0, 1.5), rx * rng.uniform(0.9, 1.1), ry * rng.uniform(0.9, 1.1), ang)
    gland = np.maximum.reduce([_lobe(xx, yy, *lobes[s]) for s in lobes])
    gland = np.maximum(gland, _lobe(xx, yy, cx, cy + ry * 0.45, sep * 0.8, 4.0 * grow, 0.0) * 0.6)  # isthmus
    uptake = (rng.uniform(2.5, 4.0) if "diffuse" in features else 1.0) * gland * rng.uniform(0.9, 1.1, size=(size, size)).astype(np.float32) ** 0.3
    background = 0.06 if "diffuse" in features else 0.15
    findings: list[ThyroidFinding] = []
    mask = np.zeros((size, size), np.uint8)
    if "diffuse" in features:
        findings.append(ThyroidFinding(1, "diffuse", "whole gland", "甲状腺", "", float(cx), float(cy), float(ry)))
        mask[gland > 0.5] = 1
    nodule_sides = list(rng.permutation(["right", "left"]))
    for kind in ("hot_nodule", "cold_nodule"):
        if kind not in features:
            continue
        side = str(nodule_sides.pop())
        lx, ly, lrx, lry, ang = lobes[side]
        pole = str(rng.choice(list(POLES)))
        t = POLES[pole][1] * lry
        nx, ny = lx - np.sin(ang) * t, ly + np.cos(ang) * t
        r = rng.uniform(4.0, 8.0) if kind == "hot_nodule" else rng.uniform(4.0, 9.0)
        disk = np.clip(r - np.hypot(xx - nx, yy - ny) + 0.5, 0, 1)
        if kind == "hot_nodule":
            uptake = uptake * (rng.uniform(0.3, 0.7) if "diffuse" not in features else 1.0) + disk * rng.uniform(3.0, 6.0)
        else:
            uptake = uptake * (1 - disk * rng.uniform(0.7, 0.95))
        side_zh = "右叶" if side == "right" else "左叶"
        findings.append(ThyroidFinding(len(findings) + 1, kind, f"{side} lobe {pole}", f"甲状腺{side_zh}{POLES[pole][0]}", side, float(nx), float(ny), float(r)))
        mask[disk > 0.5] = len(findings)
    salivary = sum(np.exp(-((xx - (cx + s * 38)) ** 2 + (yy - (cy - 45)) ** 2) / (2 * 6.0**2)) for s in (-1, 1)) * 0.35
    lam = gaussian_filter(uptake + salivary + background, 1.2)
    lam = lam * (counts * rng.uniform(0.8, 1.2) / float(lam.sum()))
    labels = sorted(features, key=THYROID_FEATURES.index) or ["normal"]
    en, zh = thyroid_report(findings)
    params = {"enlargement": round(float(grow), 3), "counts": counts, "cross_feature": len(features) >= 2, "pixel_mm": 1.0}
    return SimulatedScan({"ant": rng.poisson(lam).astype(np.float32)}, {"ant": mask}, findings, labels, en, zh, params)
