from collections import Counter

import numpy as np
import pytest

from scintix.data.manifest import Record, encode_labels, read_manifest
from scintix.data.splits import (
    assign_groups,
    find_duplicates,
    fold_to_split,
    hash_images,
    leakage_report,
    load_split,
    make_folds,
    make_split,
    patient_groups,
    save_split,
)


def _records(n_patients=200, prev=0.2, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for p in range(n_patients):
        lab = int(rng.random() < prev)
        for v in range(int(rng.integers(1, 4))):  # 1-3 images per patient
            recs.append(Record(f"p{p}_{v}.png", str(lab), f"P{p}"))
    y = np.array([int(r.label) for r in recs])
    return recs, y


def test_split_groups_patients_and_keeps_class_balance():
    recs, y = _records()
    split = make_split(recs, y, ratios=(0.7, 0.2, 0.1), seed=3)
    per_patient = {}
    for r in recs:
        per_patient.setdefault(r.patient_id, set()).add(split[r.path])
    assert all(len(s) == 1 for s in per_patient.values())
    counts = Counter(next(iter(s)) for s in per_patient.values())
    assert abs(counts["train"] - 140) <= 2 and abs(counts["val"] - 40) <= 2 and abs(counts["test"] - 20) <= 2
    pos = {s: np.mean([int(recs[i].label) for i in range(len(recs)) if split[recs[i].path] == s]) for s in ("train", "val", "test")}
    overall = y.mean()
    assert all(abs(v - overall) < 0.08 for v in pos.values()), pos


def test_split_is_seeded():
    recs, y = _records()
    assert make_split(recs, y, seed=1) == make_split(recs, y, seed=1)
    assert make_split(recs, y, seed=1) != make_split(recs, y, seed=2)


def test_rare_singleton_strata_spread_over_parts():
    strata = {f"g{i}": f"s{i}" for i in range(30)}  # every group its own stratum
    out = Counter(assign_groups(strata, {"train": 0.7, "val": 0.2, "test": 0.1}, seed=0).values())
    assert out["train"] == 21 and out["val"] == 6 and out["test"] == 3


def test_duplicates_found_and_kept_together(tiny_manifest):
    recs = read_manifest(tiny_manifest)
    y, _ = encode_labels(recs, None, "binary")
    hashes, errors = hash_images(recs)
    assert not errors
    dups = find_duplicates(recs, hashes)
    assert len(dups) == 2 and all(set(g.patient_ids) == {"P0", "P11"} for g in dups)
    groups = patient_groups(recs, dups)
    assert groups["P0"] == groups["P11"] and groups["P1"] != groups["P0"]
    for seed in range(5):
        split = make_split(recs, y, ratios=(0.5, 0.3, 0.2), seed=seed, duplicates=dups)
        assert leakage_report(recs, split, hashes) == {"patients_in_several_splits": [], "duplicate_images_across_splits": 0}


def test_conflicting_duplicate_labels_flagged():
    recs = [Record("a", "0", "A"), Record("b", "1", "B"), Record("c", "0", "C")]
    dups = find_duplicates(recs, {"a": "h1", "b": "h1", "c": "h2"})
    assert len(dups) == 1 and dups[0].conflicting


def test_leakage_report_detects_a_bad_split():
    recs = [Record("a", "0", "A"), Record("b", "0", "A"), Record("c", "1", "C")]
    rep = leakage_report(recs, {"a": "train", "b": "test", "c": "test"}, {"a": "h", "c": "h"})
    assert rep == {"patients_in_several_splits": ["A"], "duplicate_images_across_splits": 1}


def test_kfold_grouped_balanced_and_test_held_out():
    recs, y = _records(300)
    folds = make_folds(recs, y, k=5, test_ratio=0.1, seed=0)
    vals = Counter(folds.values())
    assert set(vals) == {"0", "1", "2", "3", "4", "test"}
    per_patient = {}
    for r in recs:
        per_patient.setdefault(r.patient_id, set()).add(folds[r.path])
    assert all(len(s) == 1 for s in per_patient.values())
    split = fold_to_split(folds, 2)
    assert {p for p, f in folds.items() if f == "2"} == {p for p, s in split.items() if s == "val"}
    with pytest.raises(ValueError):
        make_folds(recs, y, k=1)


def test_save_load_split(tmp_path):
    recs, y = _records(20)
    split = make_split(recs, y, seed=0)
    save_split(tmp_path / "s.csv", recs, split, {recs[0].path: "abc"})
    loaded, hashes = load_split(tmp_path / "s.csv")
    assert loaded == split and hashes == {recs[0].path: "abc"}
