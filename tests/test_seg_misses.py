"""benchmarks/seg_misses.py: each lesion found or missed, by the site the simulator gave it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "benchmarks" / "seg_misses.py").is_file(), reason="benchmarks/ not in this checkout")


@pytest.fixture
def seg_misses(benchmark_module):
    return benchmark_module("seg_misses")


def test_site_groups_drop_side_and_number(seg_misses):
    assert [seg_misses.site_group(s) for s in ("left 5th rib", "T9 vertebra", "L3 vertebra", "right ilium", "right ischiopubic ramus", "skull")] == [
        "rib", "vertebra", "vertebra", "ilium", "ischiopubic ramus", "skull"]


def test_each_lesion_is_found_or_missed_by_whether_a_predicted_pixel_touches_it(seg_misses, tmp_path):
    data, run = tmp_path / "sim", tmp_path / "run"
    for d in (data / "images", data / "masks", data / "cases", run / "eval" / "test" / "masks"):
        d.mkdir(parents=True)
    # the simulator's files at twice the model's size: finding 1 (rib, bright) and 2 (ilium, faint)
    ids = np.zeros((32, 16), np.uint8)
    ids[4:8, 4:8], ids[20:24, 8:12] = 1, 2
    image = np.full((32, 16), 100, np.uint16)
    image[4:8, 4:8], image[20:24, 8:12] = 4000, 150  # 16-bit counts, as the simulator writes them
    Image.fromarray(ids).save(data / "masks" / "P1_ant.png")
    Image.fromarray(image).save(data / "images" / "P1_ant.png")
    (data / "cases" / "P1.json").write_text(json.dumps({"findings": [{"id": 1, "site": "left 5th rib"}, {"id": 2, "site": "right ilium"}]}))
    pred = np.zeros((16, 8), np.uint8)
    pred[3, 3] = 1  # touches finding 1 (rows 2-3, columns 2-3 at the model's size); nothing near finding 2
    Image.fromarray(pred).save(run / "eval" / "test" / "masks" / "00000_P1_ant.png")
    with open(run / "eval" / "test" / "per_image.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, ["path", "patient_id", "truth_pixels", "mask_png"])
        w.writeheader()
        w.writerow({"path": str(data / "images" / "P1_ant.png"), "patient_id": "P1", "truth_pixels": 8, "mask_png": "masks/00000_P1_ant.png"})
    rows = sorted(seg_misses.lesion_rows(run, data), key=lambda r: r["finding"])
    assert [(r["finding"], r["group"], r["view"], r["pixels"], r["missed"]) for r in rows] == [(1, "rib", "ant", 4, False), (2, "ilium", "ant", 4, True)]
    # the model's resize blurs a 2x2 lesion into its ring, so below 40 and 1.5; counts above 255 are not wrapped (4000 % 256 = 160)
    assert 10 < rows[0]["contrast"] < 40 and 1.05 < rows[1]["contrast"] < 1.5
    assert seg_misses.contrast_by_group(rows)["rib"]["median"] == pytest.approx(rows[0]["contrast"], abs=1e-3)

