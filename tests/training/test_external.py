"""External test sets: a trained run on new patients, its own thresholds and calibration applied as they are."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from scintix.cli.__main__ import main


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _write(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_external_set_of_the_runs_test_patients_reproduces_its_test_metrics(tiny_run, tmp_path):
    """Nothing is re-chosen: on the run's own test images the external figures are the run's test figures."""
    root = tiny_run.parent
    split = {r["path"]: r["split"] for r in _rows(tiny_run / "split.csv")}
    test_rows = [r for r in _rows(root / "manifest.csv") if split.get(str(root / r["path"]), split.get(r["path"])) == "test"]
    assert test_rows
    manifest = _write(root / "test_only.csv", test_rows)
    assert main(["evaluate", str(tiny_run), "--data", str(manifest), "--out", str(tmp_path / "ext"), "--figures"]) == 0
    assert (tmp_path / "ext" / "test" / "roc.png").is_file() and not (tiny_run / "eval" / "test" / "roc.png").exists()  # the run's own: off
    ext = json.loads((tmp_path / "ext" / "test" / "metrics.json").read_text())
    own = json.loads((tiny_run / "eval" / "test" / "metrics.json").read_text())
    assert ext["n"] == own["n"] and ext["thresholds"] == own["thresholds"]
    for k in ("roc_auc", "recall", "specificity", "accuracy", "f1"):
        assert ext["per_class"]["abnormal"][k]["value"] == pytest.approx(own["per_class"]["abnormal"][k]["value"], abs=1e-6, nan_ok=True)
    assert len(_rows(tmp_path / "ext" / "test" / "predictions.csv")) == own["n"]
    assert {r["split"] for r in _rows(tmp_path / "ext" / "split.csv")} == {"test"}


def test_external_set_sharing_patients_or_images_with_training_is_refused(tiny_run, tmp_path, capsys):
    root = tiny_run.parent
    assert main(["evaluate", str(tiny_run), "--data", str(root / "manifest.csv"), "--out", str(tmp_path / "ext")]) == 2
    err = capsys.readouterr().err.strip()
    assert "patient id" in err and "training/validation split" in err and len(err.splitlines()) == 1
    # same pixels under a new patient id: still the model's own training image
    split = {r["path"]: r["split"] for r in _rows(tiny_run / "split.csv")}
    train_row = next(r for r in _rows(root / "manifest.csv") if split.get(str(root / r["path"]), split.get(r["path"])) == "train")
    renamed = _write(root / "renamed.csv", [{**train_row, "patient_id": "NEW1"}])
    assert main(["evaluate", str(tiny_run), "--data", str(renamed), "--out", str(tmp_path / "ext2")]) == 2
    assert "image(s)" in capsys.readouterr().err
    assert main(["evaluate", str(tiny_run), "--data", str(renamed)]) == 2  # --data without --out
    assert not (tmp_path / "ext").exists() and not (tmp_path / "ext2").exists()


def test_external_set_of_new_patients(tiny_run, tmp_path):
    rng = np.random.default_rng(11)
    rows = []
    for p in range(6):
        img = rng.integers(0, 40, size=(24, 16)).astype(np.uint8)
        if p % 2:
            img[8:12, 6:10] = 250
        Image.fromarray(img).save(tmp_path / f"n{p}_ant.png")
        rows.append({"path": f"n{p}_ant.png", "label": str(p % 2), "patient_id": f"N{p}", "view": "ant"})
    manifest = _write(tmp_path / "new.csv", rows)
    assert main(["evaluate", str(tiny_run), "--data", str(manifest), "--out", str(tmp_path / "ext")]) == 0
    m = json.loads((tmp_path / "ext" / "test" / "metrics.json").read_text())
    assert m["n"] == 6 and m["patients"] == 6 and m["split"] == "external" and "not chosen on these images" in m["threshold_method"]
    pred = _rows(tmp_path / "ext" / "test" / "predictions.csv")
    p = np.array([float(r["prob_abnormal"]) for r in pred])
    assert np.all(np.isfinite(p)) and {r["patient_id"] for r in pred} == {f"N{i}" for i in range(6)}
    assert (tmp_path / "ext" / "metrics_table.txt").read_text().count("external") >= 1
