"""Generated images (``scintix gan sample``) in a classifier run: training rows only, checked against their generator.

Rows marked ``generated=1`` (in the run's own manifest, or in the manifests
named by ``data.generated``) never enter the patient split: the split is made
(or reused) on real images alone, then the generated rows are added to
``train``. Three refusals keep the evaluation real:
  - a generated row that its manifest assigns to ``val`` or ``test``;
  - a generator whose training patients (its run's ``split.csv``) include a
    patient of this run's validation or test split: its images would carry
    those patients into training;
  - a generated row whose generator run cannot be found (nothing to check).
``data.generated_ratio`` caps their number at ratio x the real training images
(a seeded subset, drawn per class in proportion to what was generated).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

from .manifest import Record, read_manifest

__all__ = ["is_generated", "load_generated", "attach_generated", "GeneratedDataError"]


class GeneratedDataError(ValueError):
    """Generated images that cannot be used honestly; the message names the file and the cause."""


def is_generated(r: Record) -> bool:
    return (r.extra.get("generated") or "").strip() == "1"


def load_generated(manifests: Sequence[str]) -> list[Record]:
    """The rows of ``data.generated`` manifests; each must be a manifest of generated images."""
    out: list[Record] = []
    for m in manifests:
        recs = read_manifest(m)
        not_gen = [r.path for r in recs if not is_generated(r)]
        if not_gen:
            raise GeneratedDataError(f"{m}: data.generated names manifests of generated images (generated=1); {len(not_gen)} row(s) are not, e.g. {not_gen[0]}")
        out += recs
    return out


def _generator_train_patients(run: str) -> tuple[set[str], set[str]]:
    split = Path(run) / "split.csv"
    if not split.is_file():
        raise GeneratedDataError(f"generated images name generator run {run}, but {split} is missing: cannot check which patients the generator learned from")
    paths, patients = set(), set()
    with open(split, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["split"] == "train":
                paths.add(row["path"])
                patients.add(row["patient_id"])
    return paths, patients


def attach_generated(generated: Sequence[Record], real: Sequence[Record], assignment: dict[str, str], ratio: float | None, seed: int,
                     n_real_train: int | None = None, label_of=None) -> list[Record]:
    """The generated rows to train on; adds them to ``assignment`` as ``train``.

    Args:
        generated: candidate generated rows.
        real: the run's real rows (``assignment`` covers them).
        assignment: path -> split of the real rows; updated in place.
        ratio: at most ``ratio`` x ``n_real_train`` generated images (a generated patient's views count once); None = all.
        seed: for the subset.
        n_real_train: the real training samples the run uses (default: the real rows assigned to train).
        label_of: row -> stratum for the subset (default: its label text).

    Raises:
        GeneratedDataError: see the module docstring.
    """
    if not generated:
        return []
    wrong = [r.path for r in generated if r.split in ("val", "test")]
    if wrong:
        raise GeneratedDataError(f"{len(wrong)} generated image(s) are assigned to val/test by their manifest, e.g. {wrong[0]}: generated images are training rows only")
    held_out = {r.patient_id for r in real if assignment.get(r.path) in ("val", "test")}
    held_paths = {r.path for r in real if assignment.get(r.path) in ("val", "test")}
    for run in sorted({(r.extra.get("generator_run") or "").strip() for r in generated}):
        if not run:
            raise GeneratedDataError(f"generated image {next(r.path for r in generated if not (r.extra.get('generator_run') or '').strip())} names no generator_run: cannot check what it learned from")
        paths, patients = _generator_train_patients(run)
        leak = sorted((patients & held_out) | {p for p in paths & held_paths})
        if leak:
            raise GeneratedDataError(f"generator {run} learned from {len(leak)} patient(s)/image(s) of this run's val/test (e.g. {leak[0]}): "
                                     f"its images would leak them into training; use its split (data.split.file={Path(run) / 'split.csv'}) or a generator trained on this split's train")
    chosen = list(generated)
    if ratio is not None:
        # in units of generated images (a generated patient: one row, or one row per view when views are stacked)
        groups: dict[str, list[Record]] = {}
        for r in chosen:
            groups.setdefault(r.patient_id, []).append(r)
        n_train = n_real_train if n_real_train is not None else sum(1 for r in real if assignment.get(r.path) == "train")
        cap = int(round(ratio * n_train))
        if cap < len(groups):
            rng = np.random.default_rng(seed)
            key = label_of or (lambda r: r.label)
            strata: dict[str, list[str]] = {}
            for pid, rows in groups.items():
                strata.setdefault(key(rows[0]), []).append(pid)
            # per stratum in proportion to what was generated (largest remainders), each stratum shuffled by the seed
            quotas = {k: cap * len(v) / len(groups) for k, v in strata.items()}
            take = {k: int(q) for k, q in quotas.items()}
            for k in sorted(quotas, key=lambda k: quotas[k] - take[k], reverse=True)[: cap - sum(take.values())]:
                take[k] += 1
            chosen = [r for k in sorted(strata) for i in sorted(rng.permutation(len(strata[k]))[: take[k]]) for r in groups[strata[k][i]]]
    for r in chosen:
        assignment[r.path] = "train"
    return chosen
