"""Samples and the cached training dataset.

A *sample* is what the model sees once: one image, or (with ``views``) one
patient whose views are stacked as channels (ANT+POST -> 2 channels, label =
abnormal in any view), with what else the manifest gives it: a segmentation
``mask``, a second ``cross`` image (P3's cross-feature input, column
``cross_path``) and the report ``text``. Deterministic preprocessing (read,
normalise, resize, pad; masks by nearest neighbour) runs once and is cached
in memory; random augmentation runs per access, on the training set only,
seeded by (run seed, epoch, index), moving image, mask and cross image together.

Items are dicts: ``image`` (C, H, W) float32, ``target`` (class index, 0/1
vector, or for segmentation 1 if the mask holds any foreground), ``index``,
and when present ``mask`` (1, H, W) int64, ``cross`` (C', H, W) float32,
``text`` (str, "" when absent).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..transforms.functional import normalize_intensity, resize_pad, resize_pad_mask
from .io import ImageReadError, read_image
from .manifest import Record

__all__ = ["Sample", "build_samples", "preprocess", "degenerate_image", "CachedDataset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sample:
    """One model input: its image path(s), target, patient and split."""

    paths: tuple[str, ...]
    target: np.ndarray  # () int class, or (K,) 0/1 for multi-label; segmentation: 1 if the mask has foreground
    patient_id: str
    split: str | None = None
    mask: str | None = None  # label image of the (first) view
    cross: tuple[str, ...] | None = None  # P3's cross-feature image(s), one per view
    text: str | None = None  # the report

    @property
    def key(self) -> str:
        return "|".join(self.paths)


def view_kept(r: Record, split: str | None, view_filter: str | None, train_extra_views: Sequence[str] = ()) -> bool:
    """Whether a run reads this image: all views, or ``view_filter``'s, plus ``train_extra_views``' in the train split."""
    return view_filter is None or r.view == view_filter or (split == "train" and r.view in train_extra_views)


def build_samples(
    records: Sequence[Record],
    y: np.ndarray,
    splits: dict[str, str] | None = None,
    views: Sequence[str] | None = None,
    view_filter: str | None = None,
    train_extra_views: Sequence[str] = (),
) -> list[Sample]:
    """Samples from records: one per image, or one per patient with ``views`` as channels.

    With ``views`` a patient missing one of them is left out with a warning; the
    target is the element-wise maximum over views (abnormal in any view).
    ``train_extra_views`` keeps those views' images too, in the train split only
    (more training images; what is validated and tested stays ``view_filter``).
    """
    splits = splits or {}
    rows = [(r, t) for r, t in zip(records, y) if view_kept(r, splits.get(r.path, r.split), view_filter, train_extra_views)]
    if view_filter is not None and not rows:
        raise ValueError(f"no record has view {view_filter!r}")
    if not views:
        return [Sample((r.path,), np.asarray(t), r.patient_id, splits.get(r.path, r.split), r.mask, _cross(r), r.report) for r, t in rows]
    by_patient: dict[str, dict[str, tuple[Record, np.ndarray]]] = defaultdict(dict)
    for r, t in rows:
        by_patient[r.patient_id][r.view or ""] = (r, t)
    samples, incomplete = [], []
    for pid, per_view in by_patient.items():
        if not all(v in per_view for v in views):
            incomplete.append(pid)
            continue
        recs = [per_view[v][0] for v in views]
        target = np.max(np.stack([per_view[v][1] for v in views]), axis=0)
        cross = tuple(_cross(r) or ("",) for r in recs)
        samples.append(Sample(tuple(r.path for r in recs), target, pid, splits.get(recs[0].path, recs[0].split), recs[0].mask, tuple(c[0] for c in cross) if all(c != ("",) for c in cross) else None, recs[0].report))
    if incomplete:
        log.warning("%d patient(s) lack one of the views %s and are left out, e.g. %s", len(incomplete), list(views), incomplete[:3])
    return samples


def _cross(r: Record) -> tuple[str, ...] | None:
    value = (r.extra.get("cross_path") or "").strip()
    return (value,) if value else None


def preprocess(
    paths: Sequence[str],
    size: tuple[int, int],
    normalize: str = "none",
    percentiles: tuple[float, float] = (0.5, 99.5),
    reader: Callable = read_image,
    windows: Sequence[str] | None = None,
    notes: list[str] | None = None,
) -> np.ndarray:
    """Read, normalise and resize/pad each path, stacking them as channels: ``(C, H, W)``.

    With ``windows`` (CT), a DICOM CT slice in HU becomes one [0, 1] channel
    per named window instead of being normalised; an image that is not in HU
    (a PNG export, already windowed) is normalised and repeated once per window
    so the model still gets ``len(windows)`` channels.

    ``notes`` (a list, optional) receives what the caller should show beside
    the result: conversions made (colour to grey) and, prefixed
    ``"degenerate:"``, images too small, too narrow or constant to diagnose.

    Raises:
        ImageReadError: from the reader, naming the file; also an image with
            more than one frame or channel (each view is one grey image).
    """
    parts = []
    for p in paths:
        arr, meta = reader(p, channels=1)
        if arr.shape[0] != 1:
            what = f"{arr.shape[0]} frames" if meta.get("format") == "dicom" else f"{arr.shape[0]} channels"
            raise ImageReadError(p, f"has {what} (shape {tuple(arr.shape)}); each view must be one grey image -- split the frames/channels into files")
        if notes is not None:
            where = f"{p}: " if len(paths) > 1 else ""  # several views: say which one
            notes += [f"{where}{n}" for n in meta.get("notices", [])]
            notes += [f"degenerate: {where}{why}" for why in degenerate_image(arr[0])]
        if windows:
            if meta.get("modality") == "CT":
                from .dicom import window_stack

                arr = window_stack(arr[0], windows)
            else:
                if not _warned_windows:
                    log.warning("%s is not a CT DICOM in HU: windows %s cannot apply; its normalised image is repeated per window", p, list(windows))
                    _warned_windows.append(True)
                arr = np.repeat(normalize_intensity(arr, normalize, percentiles), len(windows), axis=0)  # type: ignore[arg-type]
        else:
            arr = normalize_intensity(arr, normalize, percentiles)  # type: ignore[arg-type]
        parts.append(resize_pad(arr, size))
    return np.concatenate(parts, axis=0)


MIN_SIDE = 8  # pixels: below this there is nothing to diagnose
MAX_ASPECT = 20.0  # a 1 x 5000 strip is not a scan


def degenerate_image(img: np.ndarray) -> list[str]:
    """Why a 2-D image cannot carry a diagnosis: too small, too narrow, or constant; ``[]`` when it can."""
    h, w = img.shape
    why = []
    if min(h, w) < MIN_SIDE:
        why.append(f"tiny image ({h}x{w} px, under {MIN_SIDE} px on a side)")
    if max(h, w) / max(min(h, w), 1) > MAX_ASPECT:
        why.append(f"extreme aspect ratio ({h}x{w})")
    if float(img.max()) == float(img.min()):
        why.append(f"constant image (every pixel = {float(img.min()):g})")
    return why


_warned_windows: list[bool] = []


class CachedDataset(Dataset):
    """Preprocessed samples held in memory; unreadable ones are dropped and listed in ``errors``.

    Items are dicts (see the module docstring). ``mask_mode`` (``binary`` or
    ``values``, see :mod:`.masks`) reads each sample's mask; a sample whose
    mask is missing or unreadable is dropped like an unreadable image.
    ``augment`` (an :class:`~scintix.transforms.augment.Augmenter`) is applied
    as ``augment.apply(image, seed, mask=..., cross=...)``: geometric
    transforms move the three together. With ``batch_augment`` the item is
    left as it is and carries its seed (``aug_seed``) instead: the training
    loop augments the whole batch at once
    (:class:`~scintix.transforms.batch_augment.BatchAugmenter`).
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        size: tuple[int, int],
        normalize: str = "none",
        percentiles: tuple[float, float] = (0.5, 99.5),
        augment=None,
        seed: int = 0,
        progress: bool = False,
        windows: Sequence[str] | None = None,
        mask_mode: str | None = None,
        n_classes: int = 2,
        use_cross: bool = False,
        patch_size: tuple[int, int] | None = None,
        patch_fg_prob: float = 0.33,
        batch_augment: bool = False,
    ) -> None:
        from .masks import read_mask

        if batch_augment and patch_size:
            raise ValueError("batch augmentation happens after the patch is cut; with data.patch_size use per-sample augmentation (augment.batched=false)")
        self.augment = augment
        self.batch_augment = batch_augment
        self.patch_size = tuple(patch_size) if patch_size else None  # training crops (segmentation); None = whole images
        self.patch_fg_prob = patch_fg_prob
        self.seed = seed
        self.epoch = 0
        self.errors: list[str] = []
        kept, arrays, masks, crosses = [], [], [], []
        it = samples
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(samples, desc="preprocess", leave=False, disable=None)
        for s in it:
            try:
                img = preprocess(s.paths, size, normalize, percentiles, windows=windows)
                if mask_mode is not None:
                    if not s.mask:
                        raise ImageReadError(s.paths[0], "no mask for this image (the manifest's mask column is empty)")
                    masks.append(resize_pad_mask(read_mask(s.mask, mask_mode, n_classes), size))
                if use_cross:
                    if not s.cross:
                        raise ImageReadError(s.paths[0], "no cross-feature image (the manifest's cross_path column is empty)")
                    crosses.append(preprocess(s.cross, size, normalize, percentiles, windows=windows))
                arrays.append(img)
                kept.append(s)
            except ImageReadError as exc:
                del masks[len(kept):], crosses[len(kept):]
                self.errors.append(str(exc))
        for e in self.errors:
            log.error("skipped: %s", e)
        self.samples = kept
        self.images = np.stack(arrays) if arrays else np.zeros((0, 1, *size), np.float32)
        self.masks = np.stack(masks) if mask_mode is not None and masks else None
        self.cross = np.stack(crosses) if use_cross and crosses else None
        if self.masks is not None:
            # segmentation: the sample-level target says whether the scan holds any foreground (for stratified
            # sampling, selection and lesion-free reporting)
            self.samples = [replace(smp, target=np.asarray(int(m.any()))) for smp, m in zip(self.samples, self.masks)]

    def set_epoch(self, epoch: int) -> None:
        """Augmentation seeds depend on the epoch, so each epoch differs but replays exactly."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        x = self.images[i]
        mask = self.masks[i] if self.masks is not None else None
        cross = self.cross[i] if self.cross is not None else None
        seed = (self.seed * 1_000_003 + self.epoch * 100_003 + i) % (2**63)
        deferred = self.augment is not None and self.batch_augment
        if self.augment is not None and not deferred:
            x, mask, cross = self.augment.apply(x, seed, mask=mask, cross=cross)
        if self.patch_size is not None:
            from ..transforms.patches import sample_patch

            x, mask, cross, _ = sample_patch(x, mask, self.patch_size, np.random.default_rng(seed + 3), self.patch_fg_prob, cross)
        item = {"image": torch.from_numpy(np.ascontiguousarray(x)), "target": torch.as_tensor(self.samples[i].target), "index": i, "text": self.samples[i].text or ""}
        if deferred:
            item["aug_seed"] = seed
        if mask is not None:
            item["mask"] = torch.from_numpy(np.ascontiguousarray(mask)).long()
        if cross is not None:
            item["cross"] = torch.from_numpy(np.ascontiguousarray(cross))
        return item

    @property
    def targets(self) -> np.ndarray:
        return np.stack([s.target for s in self.samples]) if self.samples else np.zeros((0,), np.int64)
