"""Batch thoracic cropping: whole-body scans in, thoracic crops and a manifest out (P1's first step)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Sequence

import numpy as np

from ..transforms.regions import RegionError, find_regions, thorax_crop_box
from .io import ImageReadError, read_image
from .manifest import Record, write_manifest

__all__ = ["crop_records"]


def crop_records(records: Sequence[Record], out_dir: str | Path, margin: float = 0.05, side: str = "both") -> tuple[Path, list[str]]:
    """Crop the thorax of every record's image into ``out_dir``; returns (manifest, errors).

    Crops are saved as ``.npy`` (real counts, no 8-bit rounding) under
    ``out_dir/crops``; the manifest keeps each record's label, patient, view,
    report and extra columns and adds ``crop_box`` (y0 x0 y1 x1 in the source)
    and ``source``. Unreadable files and images with no findable thorax are
    reported as one-line errors and skipped; the others are still written.
    """
    out = Path(out_dir)
    (out / "crops").mkdir(parents=True, exist_ok=True)
    kept, errors, boxes = [], [], {}
    for i, rec in enumerate(records):
        try:
            arr, _ = read_image(rec.path, channels=1)
            regions = find_regions(arr[0])
        except (ImageReadError, RegionError) as exc:
            errors.append(str(exc) if isinstance(exc, ImageReadError) else f"{rec.path}: {exc}")
            continue
        y0, x0, y1, x1 = thorax_crop_box(regions, arr.shape[1:], margin, side)
        stem = Path(rec.path.split("#")[0]).stem + (f"_{rec.path.rsplit('#', 1)[1]}" if "#" in rec.path else "")
        name = f"{i:05d}_{stem}.npy"
        np.save(out / "crops" / name, arr[0, y0:y1, x0:x1])
        extra = dict(rec.extra, crop_box=f"{y0} {x0} {y1} {x1}", source=rec.path)
        kept.append(dataclasses.replace(rec, path=str((out / "crops" / name).resolve()), mask=None, split=rec.split, extra=extra))
        boxes[name] = {"source": rec.path, "regions": regions.boxes, "landmarks": regions.landmarks}
    (out / "regions.json").write_text(json.dumps(boxes, indent=1))
    manifest = write_manifest(kept, out / "manifest.csv", relative_to=out)
    return manifest, errors
