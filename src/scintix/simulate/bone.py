"""Whole-body planar bone scans (ANT + POST) with labelled findings, masks, boxes and reports.

Findings:

* **metastasis** -- focal hot spots, 1 to 8, mostly on the axial skeleton
  (spine, ribs, pelvis, sternum, skull; ~85 %), the rest on proximal long bones
  and shoulder girdle; each on its own site.
* **arthritis** -- broader joint uptake (knees, shoulders, wrists, ankles,
  elbows, hips), bilateral and symmetric in 60 % of cases.
* **fracture** -- benign focal uptake (healing rib or vertebral fractures),
  1 to 3 foci on ribs (75 %) and the spine, drawn exactly as metastases are
  (same size and uptake): on the image alone a benign focus cannot be told
  from a metastasis; the report says which is which, as a physician's report
  does. Opt-in (not in the default prevalence), for report-guided
  segmentation of metastases (the ``mask_metastasis`` masks leave it out).

A scan can carry both (multi-label, P2). Counts: the expected image is
blurred by the collimator response and scaled to the chosen total counts per
view, then Poisson noise is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from .anatomy import REGIONS, Phantom, Primitive, box_to_px, make_phantom, project
from .reports import bone_report
from .scan import SimulatedScan, SiteFinding

__all__ = ["Finding", "sample_findings", "simulate_bone_scan", "BONE_LABELS"]

BONE_LABELS = ("normal", "metastasis", "arthritis", "fracture")
MET_GROUPS = {"spine": 0.40, "rib": 0.25, "pelvis": 0.12, "sternum": 0.04, "skull": 0.04, "shoulder_girdle": 0.05, "long_bone": 0.10}
FRACTURE_GROUPS = {"rib": 0.75, "spine": 0.25}
JOINTS = {"knee": 0.35, "shoulder": 0.2, "wrist": 0.15, "ankle": 0.15, "hip": 0.1, "elbow": 0.05}


@dataclass
class Finding(SiteFinding):
    """A metastasis, arthritis or fracture focus: a Gaussian of uptake at a depth in the body."""

    x_mm: float
    y_mm: float
    sigma_mm: float
    uptake: float  # peak added activity, relative to cortical bone ~0.9
    depth: float
    thickness: float

    def primitive(self) -> Primitive:
        return Primitive("gauss", (self.x_mm, self.y_mm), (0.0, 0.0), self.sigma_mm, self.uptake, self.depth, self.thickness)


def _far_enough(cands: list[Finding], x: float, y: float, sigma: float) -> bool:
    return all(np.hypot(f.x_mm - x, f.y_mm - y) > 1.6 * (f.sigma_mm + sigma) + 3 for f in cands)


def sample_findings(rng: np.random.Generator, phantom: Phantom, labels: set[str]) -> list[Finding]:
    """Findings for the requested labels; every finding sits on a different site."""
    out: list[Finding] = []
    used: set[str] = set()

    def add(kind: str, site, sigma: float, uptake: float, jitter: float) -> bool:
        for _ in range(20):
            x = site.x + rng.normal(0, jitter)
            y = site.y + rng.normal(0, jitter)
            if _far_enough(out, x, y, sigma):
                out.append(Finding(len(out) + 1, kind, site.name, site.name_zh, site.side, float(x), float(y), float(sigma), float(uptake), site.depth, site.thickness))
                used.add(site.name)
                return True
        return False

    def focal(kind: str, n: int, group_weights: dict[str, float]) -> None:
        groups, weights = list(group_weights), np.array(list(group_weights.values()))
        tries = 0
        while sum(f.kind == kind for f in out) < n and tries < 200:
            tries += 1
            group = groups[rng.choice(len(groups), p=weights / weights.sum())]
            sites = [s for s in phantom.sites if s.group == group and s.name not in used]
            if not sites:
                continue
            site = sites[rng.integers(len(sites))]
            add(kind, site, rng.uniform(4.0, 8.0), rng.uniform(2.0, 5.0), min(site.size * 0.3, 6.0))

    if "metastasis" in labels:
        focal("metastasis", min(int(rng.geometric(0.45)), 8), MET_GROUPS)
    if "arthritis" in labels:
        kinds, weights = list(JOINTS), np.array(list(JOINTS.values()))
        joint_types = [kinds[rng.choice(len(kinds), p=weights / weights.sum())]]
        if rng.random() < 0.3:
            joint_types.append(kinds[rng.choice(len(kinds), p=weights / weights.sum())])
        added = 0
        for jt in dict.fromkeys(joint_types):
            sides = ["right", "left"] if rng.random() < 0.6 else [str(rng.choice(["right", "left"]))]
            for side in sides:
                site = next(s for s in phantom.sites if s.name == f"{side} {jt}")
                if site.name not in used:
                    added += add("arthritis", site, site.size * rng.uniform(0.45, 0.65), rng.uniform(0.7, 1.8), 2.0)
        if not added:  # every candidate joint collided with a metastasis: take any free joint
            free = [s for s in phantom.sites if s.group == "joint" and s.name not in used]
            for site in rng.permutation(len(free)):
                if add("arthritis", free[site], free[site].size * 0.5, 1.2, 1.0):
                    break
    if "fracture" in labels:  # after the others, so a scan drawn without it is the same scan as before it existed
        focal("fracture", int(rng.integers(1, 4)), FRACTURE_GROUPS)
    return out


def _disk_masks(findings: list[Finding], to_px, shape: tuple[int, int], pixel_mm: float) -> dict[str, np.ndarray]:
    h, w = shape
    ant = np.zeros(shape, np.uint8)
    yy, xx = np.mgrid[0:h, 0:w]
    for f in findings:
        r, c = to_px(f.x_mm, f.y_mm)
        rad = max(1.5 * f.sigma_mm / pixel_mm, 1.0)
        ant[(yy - r) ** 2 + (xx - c) ** 2 <= rad**2] = f.id
    return {"ant": ant, "post": ant[:, ::-1].copy()}


def simulate_bone_scan(
    rng: np.random.Generator,
    labels: set[str],
    counts: float = 1.5e6,
    shape: tuple[int, int] = (1024, 256),
    pixel_mm: float = 2.26,
) -> SimulatedScan:
    """One two-view whole-body scan carrying ``labels`` (empty set = normal).

    Args:
        counts: mean total counts per view (typical clinical whole-body scans
            hold 1-2 million); each view varies by +-15 %.
    """
    unknown = set(labels) - set(BONE_LABELS[1:])
    if unknown:
        raise ValueError(f"unknown bone-scan labels {sorted(unknown)}; use {BONE_LABELS[1:]}")
    phantom = make_phantom(rng)
    findings = sample_findings(rng, phantom, set(labels))
    top = rng.uniform(15, 60)
    offset = rng.uniform(-25, 25)
    ant, post, to_px = project(phantom, shape, pixel_mm, top, offset, extra=[f.primitive() for f in findings])
    fwhm_px = rng.uniform(2.5, 3.5)  # collimator + intrinsic resolution, ~6-8 mm FWHM
    views = {}
    for name, lam in (("ant", ant), ("post", post)):
        lam = gaussian_filter(np.clip(lam, 0, None), fwhm_px / 2.355)
        lam = lam * (counts * rng.uniform(0.85, 1.15) / max(float(lam.sum()), 1e-9))
        views[name] = rng.poisson(lam + 0.02).astype(np.float32)  # + room background
    masks = _disk_masks(findings, to_px, shape, pixel_mm)
    boxes = {v: {r: box_to_px(phantom.boxes[r], to_px, shape[1], posterior=(v == "post")) for r in REGIONS} for v in ("ant", "post")}
    found = sorted({f.kind for f in findings}, key=BONE_LABELS.index)
    en, zh = bone_report(findings)
    params = dict(phantom.params, counts=counts, top_px=round(top, 1), offset_mm=round(offset, 1), fwhm_px=round(fwhm_px, 2), pixel_mm=pixel_mm)
    return SimulatedScan(views, masks, findings, found or ["normal"], en, zh, params, boxes)
