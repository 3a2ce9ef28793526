"""P1's "augmented dataset": training images expanded offline into a new dataset.

Each copy gets explicit geometric parameters (rotation, flip, shift, scale),
sampled from a seed and applied with MONAI's deterministic ``Affine``; the
parameters and the source image are written next to each new image in the
manifest, so every augmented image can be traced and regenerated. Only
training images are expanded: copies of validation or test images would leak.
Copies keep their source's patient_id (grouping stays intact) and its split.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from ..data.io import ImageReadError, read_image
from ..data.manifest import Record, write_manifest
from .augment import AugmentConfig

__all__ = ["sample_params", "apply_params", "expand_dataset", "expand_cached"]


def sample_params(rng: np.random.Generator, cfg: AugmentConfig) -> dict[str, float]:
    return {
        "rotate_deg": float(rng.uniform(-cfg.rotate_deg, cfg.rotate_deg)),
        "shift_y": float(rng.uniform(-cfg.translate, cfg.translate)),
        "shift_x": float(rng.uniform(-cfg.translate, cfg.translate)),
        "scale": float(rng.uniform(1 - cfg.scale, 1 + cfg.scale)),
        "flip": float(rng.random() < cfg.flip_prob),
    }


def apply_params(arr: np.ndarray, p: dict[str, float]) -> np.ndarray:
    """Apply recorded parameters to a ``(C, H, W)`` array (background-filled, same size)."""
    from monai.transforms import Affine

    h, w = arr.shape[-2:]
    lo = float(arr.min())
    aff = Affine(
        rotate_params=(math.radians(p["rotate_deg"]),),
        translate_params=(p["shift_y"] * h, p["shift_x"] * w),
        scale_params=(p["scale"], p["scale"]),
        padding_mode="zeros",
        mode="bilinear",
        image_only=True,
    )
    out = np.asarray(aff(arr - lo), dtype=np.float32) + lo
    return out[..., ::-1].copy() if p["flip"] else out


def expand_dataset(
    records: Sequence[Record],
    splits: dict[str, str],
    out_dir: str | Path,
    copies: int = 4,
    cfg: AugmentConfig = AugmentConfig(flip_prob=0.5),
    seed: int = 0,
) -> tuple[Path, list[str]]:
    """Write ``copies`` augmented versions of each training image plus a manifest.

    The new manifest holds every original record (with its split) and the
    copies, with columns ``source_path``, ``aug_seed`` and the parameters.
    Returns the manifest path and the errors of unreadable files (skipped).
    """
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    new: list[Record] = []
    errors: list[str] = []
    for i, r in enumerate(records):
        split = splits.get(r.path, r.split)
        new.append(replace(r, split=split))
        if split != "train":
            continue
        try:
            arr, _ = read_image(r.path, channels=1)
        except ImageReadError as exc:
            errors.append(str(exc))
            continue
        for c in range(copies):
            p = sample_params(rng, cfg)
            dest = out / "images" / f"{i:06d}_{c}.npy"
            np.save(dest, apply_params(arr, p)[0])
            extra = {**r.extra, "source_path": r.path, "aug_seed": str(seed), **{f"aug_{k}": repr(v) for k, v in p.items()}}
            new.append(replace(r, path=str(dest.resolve()), split="train", extra=extra))
    manifest = write_manifest(new, out / "manifest.csv", relative_to=out)
    (out / "README.md").write_text(
        f"# Augmented dataset (P1 offline expansion)\n\n{copies} geometric copies of each of the training images, seed {seed}, "
        f"config {cfg}. Copies are float32 .npy (lossless); each row of manifest.csv names its source_path and exact parameters. "
        "Validation and test images are listed unchanged and never augmented.\n"
    )
    return manifest, errors


def expand_cached(ds, copies: int, cfg: AugmentConfig, seed: int = 0):
    """The same expansion in memory: ``ds`` (a training :class:`~scintix.data.datasets.CachedDataset`) plus
    ``copies`` fixed augmented versions of each of its images, appended (each copy keeps its sample: patient,
    target, report). Parameters come from ``default_rng(seed)`` in image order, so a resumed run gets the same copies.

    Classification only: an interpolated mask is not a mask.
    """
    if copies <= 0:
        return ds
    if ds.masks is not None:
        raise ValueError("augment.offline_copies: for classification; segmentation masks are augmented online (augment.prob)")
    rng = np.random.default_rng(seed)
    n = len(ds)
    images, cross = [ds.images], ([ds.cross] if ds.cross is not None else None)
    params = [[sample_params(rng, cfg) for _ in range(copies)] for _ in range(n)]
    for c in range(copies):
        images.append(np.stack([apply_params(ds.images[i], params[i][c]) for i in range(n)]).astype(ds.images.dtype))
        if cross is not None:
            cross.append(np.stack([apply_params(ds.cross[i], params[i][c]) for i in range(n)]).astype(ds.cross.dtype))
    ds.images = np.concatenate(images)
    ds.cross = np.concatenate(cross) if cross is not None else None
    ds.samples = list(ds.samples) * (copies + 1)
    return ds
