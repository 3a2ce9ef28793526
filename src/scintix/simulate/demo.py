"""The default job's data: simulated whole-body bone scans, their thoracic crops found automatically, a label per crop.

P1's pipeline end to end on SYNTHETIC data: ``simulate`` (whole-body ANT +
POST, metastases at known sites with masks) -> ``crop`` (the thorax found by
the region finder, masks cropped with it) -> a classifier on the crops. The
label of a crop is whether it holds any lesion pixel (``lesion_in_crop``), not
the whole-body finding: a metastasis in the pelvis is not in a chest crop.
The manifest's ``label`` is that (``normal`` / ``abnormal``), so the same
recipe reads real crops with a ``label`` column unchanged.
Arthritis is left out (prevalence 0) so that every lesion is a metastasis.

Used by ``scintix run`` when ``data.source`` is empty (the quickstart recipe,
``make run``); :func:`make_demo_data` also builds the older chest-crop-only
generator (``synthetic.generator: chest-crops``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from ..data.crop import crop_records
from ..data.manifest import read_manifest, write_manifest
from ..data.synthetic import make_synthetic_dataset
from .dataset import SimulateConfig, simulate_dataset
from .reports import SYNTHETIC_EN

__all__ = ["make_demo_data", "make_thorax_crops", "GENERATORS"]

log = logging.getLogger(__name__)


def make_thorax_crops(out_dir: str | Path, n_patients: int = 400, prevalence: float = 0.5, seed: int = 0, margin: float = 0.05) -> Path:
    """Simulate ``n_patients`` whole-body scans into ``out_dir/whole_body`` and crop their thoraces into ``out_dir``; returns the crops' manifest."""
    out = Path(out_dir)
    t = time.perf_counter()
    wb = simulate_dataset(out / "whole_body", SimulateConfig(mode="bone", n=n_patients, seed=seed, prevalence={"metastasis": prevalence, "arthritis": 0.0}))
    t_sim = time.perf_counter() - t
    manifest, errors = crop_records(read_manifest(wb), out, margin, "both")
    crops = read_manifest(manifest)  # the crop's own label replaces the whole-body one
    write_manifest([dataclasses.replace(r, label="abnormal" if r.extra.get("lesion_in_crop") == "1" else "normal") for r in crops], manifest, relative_to=out)
    if errors:
        log.warning("%d simulated view(s) could not be cropped, e.g. %s", len(errors), errors[0])
    log.info("SYNTHETIC demo data: %d whole-body scans simulated in %.0f s, thoraces cropped in %.0f s -> %s", n_patients, t_sim, time.perf_counter() - t - t_sim, manifest)
    (out / "README.md").write_text(
        f"# SYNTHETIC data -- {SYNTHETIC_EN}\n\n{n_patients} simulated whole-body bone scans (`whole_body/`, seed {seed}, metastasis prevalence {prevalence}),\n"
        "their thoracic crops found by `scintix crop` (`crops/`, `masks/`), and `manifest.csv` whose `label`\n"
        "(and `lesion_in_crop`) says whether a crop holds any lesion pixel. Nothing measured on it says anything about real patients.\n",
        encoding="utf-8",
    )
    return manifest


GENERATORS = {"bone-thorax": make_thorax_crops, "chest-crops": make_synthetic_dataset}


def make_demo_data(out_dir: str | Path, options: dict) -> Path:
    """Build the SYNTHETIC data a recipe without ``data.source`` asks for (``synthetic.generator``, default ``chest-crops``)."""
    opts = dict(options)
    name = opts.pop("generator", "chest-crops")
    if name not in GENERATORS:
        raise ValueError(f"synthetic.generator={name!r}; valid: {', '.join(GENERATORS)}")
    try:
        return GENERATORS[name](out_dir, **opts)
    except TypeError as exc:
        raise ValueError(f"synthetic options {options}: {exc}") from None
