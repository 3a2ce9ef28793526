"""``scintix split | augment | synthetic | simulate | crop | manifest``: the data-preparation subcommands."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

__all__ = ["add_data_parsers", "batch_exit", "DATA_COMMANDS"]


def batch_exit(done: int, total: int) -> int:
    """0: every input worked; 1: some did not; 2: none did (or there were none)."""
    return 0 if total and done == total else (1 if done else 2)


def add_data_parsers(sub) -> None:
    p = sub.add_parser("split", help="make a patient-grouped split and report duplicates / leakage")
    p.add_argument("data")
    p.add_argument("--out", default="split.csv")
    p.add_argument("--ratios", type=float, nargs=3, default=(0.7, 0.2, 0.1), metavar=("TRAIN", "VAL", "TEST"))
    p.add_argument("--folds", type=int, default=0, help="k >= 2: k-fold assignment (test held out first)")
    p.add_argument("--task", default="binary")
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("augment", help="P1's offline augmented dataset from the training split")
    p.add_argument("data")
    p.add_argument("--split", required=True, help="split CSV (from `scintix split` or a run folder)")
    p.add_argument("--out", required=True)
    p.add_argument("--copies", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rotate-deg", type=float, default=10.0)
    p.add_argument("--translate", type=float, default=0.05)
    p.add_argument("--scale", type=float, default=0.1)
    p.add_argument("--flip-prob", type=float, default=0.5)
    p = sub.add_parser("synthetic", help="write the built-in synthetic bone-scan-like dataset")
    p.add_argument("out_dir")
    p.add_argument("--patients", type=int, default=240)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("simulate", help="simulate SYNTHETIC whole-body bone scans, thyroid scans or head-CT slices with masks, boxes and reports")
    p.add_argument("out_dir")
    p.add_argument("--mode", choices=("bone", "thyroid", "headct"), default="bone")
    p.add_argument("--n", type=int, default=100, help="number of cases (patients)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--counts", type=float, default=None, help="total counts per view (default 1.5e6 bone, 2e5 thyroid)")
    p.add_argument("--format", choices=("png", "dicom", "npy"), default="png")
    p.add_argument("--prevalence", nargs="*", default=[], metavar="LABEL=P", help="e.g. metastasis=0.4 arthritis=0.2")
    p.add_argument("--max-cross", type=float, default=None, help="thyroid: keep this fraction of the multi-feature cases")
    p = sub.add_parser("crop", help="find body regions on whole-body scans and write thoracic crops + a manifest")
    p.add_argument("input", help="image file, folder, or manifest CSV of whole-body views")
    p.add_argument("--out", required=True)
    p.add_argument("--margin", type=float, default=0.05, help="fraction of the thorax box added on every side")
    p.add_argument("--side", choices=("both", "image_left", "image_right"), default="both", help="whole thorax or one half (BS-80K crops are one side)")
    p = sub.add_parser("manifest", help="a manifest CSV for a folder of DICOM files (NM: one row per view)")
    p.add_argument("folder")
    p.add_argument("--out", required=True)


def cmd_split(a: argparse.Namespace) -> int:
    from ..data.manifest import encode_labels, load_data
    from ..data.splits import (
        find_duplicates,
        hash_images,
        leakage_report,
        make_folds,
        make_split,
        save_split,
    )

    if a.folds == 1 or a.folds < 0:
        raise ValueError(f"--folds {a.folds}: k-fold needs k >= 2 (0 = one train/val/test split)")
    records = load_data(a.data)
    y, _ = encode_labels(records, None, a.task)
    hashes, errors = hash_images(records)
    for e in errors:
        print(f"unreadable, left out: {e}", file=sys.stderr)
    keep = [i for i, r in enumerate(records) if r.path in hashes]
    recs, yy = [records[i] for i in keep], y[keep]
    dups = find_duplicates(recs, hashes)
    if a.folds >= 2:
        assignment = make_folds(recs, yy, a.folds, a.task, a.ratios[2], a.seed, dups)
    else:
        assignment = make_split(recs, yy, a.task, tuple(a.ratios), a.seed, dups)
    save_split(a.out, recs, assignment, hashes)
    print(f"{len(recs)} images of {len({r.patient_id for r in recs})} patients -> {a.out}")
    print(f"exact-duplicate groups: {len(dups)} ({sum(g.conflicting for g in dups)} with conflicting labels)")
    for g in dups:
        print(f"  patients {', '.join(sorted(set(g.patient_ids)))}: labels {', '.join(g.labels)}{'  CONFLICT' if g.conflicting else ''}")
    print("leakage check:", json.dumps(leakage_report(recs, assignment, hashes)))
    return 0


def cmd_augment(a: argparse.Namespace) -> int:
    from ..data.manifest import load_data
    from ..data.splits import load_split
    from ..transforms.augment import AugmentConfig
    from ..transforms.offline import expand_dataset

    records = load_data(a.data)
    splits, _ = load_split(a.split)
    cfg = AugmentConfig(rotate_deg=a.rotate_deg, translate=a.translate, scale=a.scale, flip_prob=a.flip_prob)
    manifest, errors = expand_dataset(records, splits, a.out, a.copies, cfg, a.seed)
    for e in errors:
        print(f"unreadable, skipped: {e}", file=sys.stderr)
    print(f"augmented dataset -> {manifest}")
    return 0


def cmd_synthetic(a: argparse.Namespace) -> int:
    from ..data.synthetic import make_synthetic_dataset

    print(f"SYNTHETIC dataset -> {make_synthetic_dataset(a.out_dir, n_patients=a.patients, seed=a.seed)}")
    return 0


def cmd_simulate(a: argparse.Namespace) -> int:
    from ..simulate import SimulateConfig, simulate_dataset

    prevalence = {}
    for item in a.prevalence:
        label, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--prevalence wants LABEL=P, got {item!r}")
        prevalence[label] = float(value)
    cfg = SimulateConfig(mode=a.mode, n=a.n, seed=a.seed, counts=a.counts, prevalence=prevalence, format=a.format, max_cross=a.max_cross)
    t = time.time()
    manifest = simulate_dataset(a.out_dir, cfg, progress=True)
    print(f"SYNTHETIC {a.mode} scans: {a.n} cases in {time.time() - t:.1f} s -> {manifest}")
    return 0


def cmd_crop(a: argparse.Namespace) -> int:
    from ..data.crop import crop_records
    from ..data.manifest import load_inputs

    records = load_inputs(a.input)
    manifest, errors = crop_records(records, a.out, a.margin, a.side)
    for e in errors:
        print(f"not cropped: {e}", file=sys.stderr)
    print(f"{len(records) - len(errors)} of {len(records)} images cropped -> {manifest}")
    return batch_exit(len(records) - len(errors), len(records))


def cmd_manifest(a: argparse.Namespace) -> int:
    from ..data.manifest import manifest_from_dicom, write_manifest

    records, errors = manifest_from_dicom(a.folder)
    for e in errors:
        print(f"unreadable, left out: {e}", file=sys.stderr)
    if not records:
        raise ValueError(f"{a.folder}: no readable DICOM images")
    out = write_manifest(records, a.out, relative_to=Path(a.out).parent)
    print(f"{len(records)} rows ({len({r.patient_id for r in records})} patients) -> {out}; add a 'label' column to train on it")
    return 0


DATA_COMMANDS = {"split": cmd_split, "augment": cmd_augment, "synthetic": cmd_synthetic, "simulate": cmd_simulate, "crop": cmd_crop, "manifest": cmd_manifest}
