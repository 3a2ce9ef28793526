"""Patient-grouped, label-stratified splits, exact-duplicate detection and leakage checks.

Grouping: all images of a patient go to one split, and patients that share an
exact-duplicate image (same pixels, e.g. one person entered under two ids) are
merged into one group first, so no copy of an image can sit on both sides.
Stratification: groups are dealt to splits stratum by stratum (the stratum is
the group's label: "any positive" for binary, the commonest class for
multi-class, the label set for multi-label) so each split keeps the class
balance. Everything is seeded; the result is saved to a CSV that later runs reuse.
"""

from __future__ import annotations

import csv
import logging
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from .io import ImageReadError, pixel_hash, read_image
from .manifest import Record

__all__ = [
    "DuplicateGroup",
    "hash_images",
    "find_duplicates",
    "patient_groups",
    "assign_groups",
    "make_split",
    "make_folds",
    "save_split",
    "load_split",
    "leakage_report",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DuplicateGroup:
    """Images with identical pixels. ``conflicting`` when their labels differ."""

    hash: str
    paths: tuple[str, ...]
    patient_ids: tuple[str, ...]
    labels: tuple[str, ...]

    @property
    def conflicting(self) -> bool:
        return len(set(self.labels)) > 1

    def as_dict(self) -> dict:
        return {"paths": list(self.paths), "patient_ids": list(self.patient_ids), "labels": list(self.labels), "conflicting_labels": self.conflicting}


def hash_images(records: Sequence[Record], reader: Callable = read_image) -> tuple[dict[str, str], list[str]]:
    """Pixel hash of every readable record; unreadable files are returned as one-line errors."""
    hashes, errors = {}, []
    for r in records:
        try:
            arr, _ = reader(r.path, channels=None)
        except ImageReadError as exc:
            errors.append(str(exc))
            continue
        hashes[r.path] = pixel_hash(arr)
    return hashes, errors


def find_duplicates(records: Sequence[Record], hashes: Mapping[str, str]) -> list[DuplicateGroup]:
    """Groups of two or more records whose images are pixel-identical."""
    by_hash: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r.path in hashes:
            by_hash[hashes[r.path]].append(r)
    groups = [
        DuplicateGroup(h, tuple(r.path for r in rs), tuple(r.patient_id for r in rs), tuple(r.label or "" for r in rs))
        for h, rs in by_hash.items()
        if len(rs) > 1
    ]
    return sorted(groups, key=lambda g: g.paths)


def patient_groups(records: Sequence[Record], duplicates: Sequence[DuplicateGroup] = ()) -> dict[str, str]:
    """Map patient_id -> group id; patients sharing a duplicate image share a group (union-find)."""
    parent: dict[str, str] = {r.patient_id: r.patient_id for r in records}

    def find(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for g in duplicates:
        roots = sorted({find(p) for p in g.patient_ids if p in parent})  # a group may reach beyond these records (a subset being split)
        for other in roots[1:]:
            parent[other] = roots[0]
    return {p: find(p) for p in parent}


def _group_strata(records: Sequence[Record], groups: Mapping[str, str], y: np.ndarray, task) -> dict[str, str]:
    from ..tasks import get_task

    task = get_task(task)
    labels: dict[str, list] = defaultdict(list)
    for r, yi in zip(records, y):
        labels[groups[r.patient_id]].append(yi)
    return {g: task.group_stratum(np.asarray(ys)) for g, ys in labels.items()}


def assign_groups(strata: Mapping[str, str], ratios: Mapping[str, float], seed: int) -> dict[str, str]:
    """Deal groups to named parts in proportion to ``ratios``, keeping each stratum balanced.

    Groups are ordered stratum by stratum (shuffled within with ``seed``) and
    dealt in that order, each to the part furthest below its overall share.
    Any run of consecutive groups, so each stratum, is then split in the
    ratios to within about one group, and strata of one group still spread
    over the parts instead of all landing in the largest.
    """
    names = list(ratios)
    total = sum(ratios.values())
    share = np.array([ratios[n] / total for n in names])
    rng = np.random.default_rng(seed)
    by_stratum: dict[str, list[str]] = defaultdict(list)
    for g in sorted(strata):
        by_stratum[strata[g]].append(g)
    order: list[str] = []
    for key in sorted(by_stratum):
        members = by_stratum[key]
        rng.shuffle(members)
        order.extend(members)
    counts = np.zeros(len(names))
    out = {}
    for i, g in enumerate(order):
        best = int(np.argmax(share * (i + 1) - counts))
        counts[best] += 1
        out[g] = names[best]
    return out


def make_split(
    records: Sequence[Record],
    y: np.ndarray,
    task: str = "binary",
    ratios: tuple[float, float, float] = (0.7, 0.2, 0.1),
    seed: int = 0,
    duplicates: Sequence[DuplicateGroup] = (),
) -> dict[str, str]:
    """Map each record path to ``train``/``val``/``test``, grouped by patient (and duplicates).

    Raises:
        ValueError: ratios that are negative, not finite, or give no train
            part; or too few patient groups for every part asked for.

    >>> split = make_split(records, y, ratios=(0.7, 0.2, 0.1), seed=0)  # doctest: +SKIP
    """
    check_ratios(ratios)
    groups = patient_groups(records, duplicates)
    strata = _group_strata(records, groups, y, task)
    parts = {n: r for n, r in zip(("train", "val", "test"), ratios) if r > 0}
    assigned = assign_groups(strata, parts, seed)
    empty = [n for n in parts if n not in assigned.values()]
    if empty:
        raise ValueError(f"{len(strata)} patient group(s) cannot fill train/val/test at ratios {list(ratios)}: {', '.join(empty)} would be empty; add patients or set that ratio to 0")
    return {r.path: assigned[groups[r.patient_id]] for r in records}


def check_ratios(ratios: Sequence[float]) -> None:
    """Train/val/test ratios: three finite numbers >= 0 with a positive train share."""
    if len(ratios) != 3 or not all(isinstance(r, (int, float)) and math.isfinite(r) and r >= 0 for r in ratios):
        raise ValueError(f"split ratios {list(ratios)}: need three finite numbers >= 0 (train, val, test)")
    if ratios[0] <= 0:
        raise ValueError(f"split ratios {list(ratios)}: the train share must be > 0")


def make_folds(
    records: Sequence[Record],
    y: np.ndarray,
    k: int,
    task: str = "binary",
    test_ratio: float = 0.1,
    seed: int = 0,
    duplicates: Sequence[DuplicateGroup] = (),
) -> dict[str, str]:
    """Map each path to ``test`` or a fold ``"0".."k-1"``: a held-out test part, then k grouped folds."""
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2, got {k}")
    if not (math.isfinite(test_ratio) and 0 <= test_ratio < 1):
        raise ValueError(f"test ratio {test_ratio}: must lie in [0, 1)")
    groups = patient_groups(records, duplicates)
    strata = _group_strata(records, groups, y, task)
    n_rest = round(len(strata) * (1 - test_ratio))
    if k > n_rest // 2:
        raise ValueError(f"{k} folds over about {n_rest} patient group(s) outside test leaves folds of fewer than 2 patients; use at most {max(n_rest // 2, 0)} folds")
    if test_ratio > 0:
        first = assign_groups(strata, {"rest": 1 - test_ratio, "test": test_ratio}, seed)
    else:
        first = {g: "rest" for g in strata}
    rest = {g: s for g, s in strata.items() if first[g] == "rest"}
    folds = assign_groups(rest, {str(i): 1.0 for i in range(k)}, seed + 1)
    return {r.path: folds.get(groups[r.patient_id], "test") for r in records}


def cv_fold_split(
    records: Sequence[Record],
    y: np.ndarray,
    folds: Mapping[str, str],
    fold: int,
    inner_val: float,
    task: str = "binary",
    seed: int = 0,
    duplicates: Sequence[DuplicateGroup] = (),
) -> dict[str, str]:
    """One cross-validation run's split: fold ``fold`` is ``test`` (out of fold); of the other folds' patients, a grouped,
    stratified ``inner_val`` share is ``val`` (model selection, thresholds, calibration), the rest ``train``.

    The out-of-fold patients take no part in any choice of the run, so pooling every fold's test predictions gives an
    honest out-of-fold estimate. Records outside ``folds`` (e.g. a held-out test part) keep ``test``.
    """
    pool = [i for i, r in enumerate(records) if folds.get(r.path) not in (None, "test", str(fold))]
    inner = make_split([records[i] for i in pool], np.asarray(y)[pool], task, (1 - inner_val, inner_val, 0.0), seed + 7919 * (fold + 1), duplicates)
    return {r.path: inner.get(r.path, "test") for r in records if r.path in folds}


def fold_to_split(assignment: Mapping[str, str], fold: int) -> dict[str, str]:
    """Turn a fold assignment into train/val/test for one fold (that fold is val)."""
    return {p: ("test" if f == "test" else "val" if f == str(fold) else "train") for p, f in assignment.items()}


def save_split(path: str | Path, records: Sequence[Record], assignment: Mapping[str, str], hashes: Mapping[str, str] | None = None) -> Path:
    """Write ``path,patient_id,label,split,pixel_hash`` rows; later runs reuse this file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "patient_id", "label", "split", "pixel_hash"])
        for r in records:
            if r.path in assignment:
                w.writerow([r.path, r.patient_id, r.label or "", assignment[r.path], (hashes or {}).get(r.path, "")])
    return path


def load_split(path: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """Read a split file: (path -> split, path -> pixel hash)."""
    assignment, hashes = {}, {}
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            assignment[row["path"]] = row["split"]
            if row.get("pixel_hash"):
                hashes[row["path"]] = row["pixel_hash"]
    return assignment, hashes


def leakage_report(records: Sequence[Record], assignment: Mapping[str, str], hashes: Mapping[str, str]) -> dict:
    """Patients and identical images found in more than one split (both should be empty)."""
    by_patient: dict[str, set] = defaultdict(set)
    by_hash: dict[str, set] = defaultdict(set)
    for r in records:
        if r.path not in assignment:
            continue
        by_patient[r.patient_id].add(assignment[r.path])
        if r.path in hashes:
            by_hash[hashes[r.path]].add(assignment[r.path])
    patients = sorted(p for p, s in by_patient.items() if len(s) > 1)
    images = sum(1 for s in by_hash.values() if len(s) > 1)
    return {"patients_in_several_splits": patients, "duplicate_images_across_splits": images}
