"""Batch thoracic cropping: whole-body scans in, thoracic crops and a manifest out (P1's first step)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .._atomic import atomic_path
from ..transforms.regions import (
    RegionError,
    find_regions,
    looks_whole_body,
    region_crop_box,
    thorax_crop_box,
)
from .io import ImageReadError, read_image
from .manifest import EXTRA_MASK_COLUMNS, Record, write_manifest

__all__ = ["crop_records", "RegionReader"]


def crop_records(records: Sequence[Record], out_dir: str | Path, margin: float = 0.05, side: str = "both") -> tuple[Path, list[str]]:
    """Crop the thorax of every record's image into ``out_dir``; returns (manifest, errors).

    Crops are saved as ``.npy`` (real counts, no 8-bit rounding) under
    ``out_dir/crops``; the manifest keeps each record's label, patient, view,
    report and extra columns and adds ``crop_box`` (y0 x0 y1 x1 in the source)
    and ``source``. A record's masks (``mask``, and ``mask_class`` and
    ``mask_metastasis`` as the simulator writes them) are cropped with it into
    ``masks/``, ``masks_class/`` and ``masks_metastasis/``, and ``lesion_in_crop`` (0/1) says whether the crop holds
    any lesion pixel: a per-crop label, since a whole-body finding may lie
    outside the thorax. Unreadable files and images with no findable thorax are
    reported as one-line errors and skipped; the others are still written.
    ``manifest.csv`` and ``regions.json`` are written under temporary names
    and moved into place at the end, and only when something was cropped: a
    failed crop into an existing folder leaves its earlier outputs as they were.

    Raises:
        ValueError: ``margin`` not a finite number in [0, 1], an unknown ``side``,
            or no image could be cropped (the errors say why).
    """
    if not isinstance(margin, (int, float)) or not math.isfinite(margin) or not 0 <= margin <= 1:
        raise ValueError(f"--margin {margin}: must be a finite fraction of the thorax box in [0, 1]")
    if side not in ("both", "image_left", "image_right"):
        raise ValueError(f"--side {side!r}: choose both, image_left or image_right")
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
        if y1 - y0 < 2 or x1 - x0 < 2:
            errors.append(f"{rec.path}: the thorax box is empty ({y1 - y0}x{x1 - x0} px); not cropped")
            continue
        stem = Path(rec.path.split("#")[0]).stem + (f"_{rec.path.rsplit('#', 1)[1]}" if "#" in rec.path and not Path(rec.path).exists() else "")
        name = f"{i:05d}_{stem}.npy"
        try:
            sources = {"mask": rec.mask, **{c: rec.extra.get(c) for c in EXTRA_MASK_COLUMNS}}  # column -> folder "masks_..."
            masks = {col: _crop_mask(src, (y0, x0, y1, x1), arr.shape[1:], out / col.replace("mask", "masks", 1) / f"{name[:-4]}.png") for col, src in sources.items() if src}
        except (ImageReadError, ValueError) as exc:
            errors.append(f"{rec.path}: its mask cannot be cropped ({exc})")
            continue
        np.save(out / "crops" / name, arr[0, y0:y1, x0:x1])
        extra = dict(rec.extra, crop_box=f"{y0} {x0} {y1} {x1}", source=rec.path)
        extra.update({c: str(masks[c][0]) for c in EXTRA_MASK_COLUMNS if c in masks})
        if "mask" in masks:
            extra["lesion_in_crop"] = str(int(masks["mask"][1]))  # a per-crop label: does the crop hold any lesion pixel?
        kept.append(dataclasses.replace(rec, path=str((out / "crops" / name).resolve()), mask=str(masks["mask"][0]) if "mask" in masks else None, split=rec.split, extra=extra))
        boxes[name] = {"source": rec.path, "regions": regions.boxes, "landmarks": regions.landmarks}
    if not kept:
        raise ValueError(f"no image could be cropped ({len(errors)} failed, e.g. {errors[0] if errors else 'no input'}); nothing written to {out}")
    with atomic_path(out / "regions.json") as tmp:
        tmp.write_text(json.dumps(boxes, indent=1))
    with atomic_path(out / "manifest.csv") as tmp:
        write_manifest(kept, tmp, relative_to=out)
    return out / "manifest.csv", errors


def _crop_mask(src: str, box: tuple[int, int, int, int], shape: tuple[int, int], dst: Path) -> tuple[Path, bool]:
    """The same box of a label mask (values kept: finding ids or class indices), as a PNG; and whether it holds any foreground."""
    from PIL import Image

    m, _ = read_image(src, channels=None)
    if m.shape[0] != 1 or m.shape[1:] != tuple(shape):
        raise ValueError(f"mask {src} has shape {tuple(m.shape[1:])}, the image {tuple(shape)}")
    y0, x0, y1, x1 = box
    part = np.rint(m[0, y0:y1, x0:x1]).astype(np.uint16 if m.max() > 255 else np.uint8)
    dst.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(part).save(dst)
    return dst.resolve(), bool(part.any())


class RegionReader:
    """A reader for :func:`~scintix.data.datasets.preprocess` that finds the body regions of whole-body views and crops them to a
    model's region.

    A model trained on thoracic or chest crops (``data.region``) must not read
    a whole-body scan squeezed to its input size: it answers, confidently, on
    an image it has never seen the like of. Images with the shape of a
    whole-body view (:func:`~scintix.transforms.regions.looks_whole_body`) are
    cropped to ``region``; smaller ones are taken to be crops already and pass
    as read. With ``region=None`` nothing is cropped and regions are found
    where they can be (for display). What was found is kept in ``found``
    (path -> source shape, crop box or None, region boxes, and the whole view).

    Raises (from ``__call__``, with a region only):
        ImageReadError: a whole-body view whose regions cannot be found, or a
            side region on a view that is neither ant nor post.
    """

    def __init__(self, region: str | None, views: dict[str, str | None] | None = None, margin: float = 0.05, reader=read_image) -> None:
        self.region, self.views, self.margin, self.reader = region, dict(views or {}), margin, reader
        self.found: dict[str, dict] = {}

    def __call__(self, path: str, channels: int = 1):
        arr, meta = self.reader(path, channels=channels)
        if arr.ndim != 3 or arr.shape[0] != 1 or not looks_whole_body(arr.shape[1:]):
            return arr, meta
        try:
            regions = find_regions(arr[0])
            box = region_crop_box(regions, arr.shape[1:], self.region, self.views.get(path), self.margin) if self.region else None
        except RegionError as exc:
            if not self.region:
                return arr, meta  # regions are only shown; the model reads the whole view
            raise ImageReadError(path, f"a whole-body scan ({arr.shape[1]}x{arr.shape[2]}) for a model of the {self.region.replace('_', ' ')} region, "
                                       f"but {exc}; crop it first (scintix crop) or name the view") from None
        self.found[path] = {"shape": tuple(arr.shape[1:]), "box": box, "regions": dict(regions.boxes), "image": arr[0]}
        if box is None:
            return arr, meta
        y0, x0, y1, x1 = box
        if y1 - y0 < 2 or x1 - x0 < 2:
            raise ImageReadError(path, f"the {self.region.replace('_', ' ')} box found on this whole-body scan is empty; crop it first (scintix crop)")
        return arr[:, y0:y1, x0:x1], meta
