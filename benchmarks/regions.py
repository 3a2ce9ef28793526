"""Region finding and thoracic crop on simulated whole-body scans with known boxes, plus a figure.

    .venv/bin/python benchmarks/regions.py [--n 300] [--seed 5000]

Writes benchmarks/results/regions.json (IoU per region, both views, scans the
fractions were NOT fitted on) and benchmarks/results/regions_simulated.png (a
few simulated scans with true and found boxes). With pydicom's GE whole-body
test file available it also draws the regions found on that real scan to
benchmarks/work/ge_nm_regions.png (work/: derived from third-party data, not
committed) for checking by eye.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _common import RESULTS, WORK

from scintix.simulate import simulate_bone_scan
from scintix.simulate.anatomy import REGIONS
from scintix.transforms.regions import RegionError, box_iou, find_regions

COLOURS = {"head": (220, 0, 0), "thorax": (0, 150, 0), "abdomen_pelvis": (0, 0, 230), "legs": (190, 0, 190)}


def _draw(img, boxes, true_boxes=None):
    from PIL import Image, ImageDraw

    g = np.clip(img / max(np.percentile(img, 99.7), 1e-6), 0, 1)
    im = Image.fromarray(((1 - g) * 255).astype(np.uint8)).convert("RGB")
    d = ImageDraw.Draw(im)
    for y0, x0, y1, x1 in (true_boxes or {}).values():
        d.rectangle([x0, y0, x1 - 1, y1 - 1], outline=(160, 160, 160))
    for name, (y0, x0, y1, x1) in boxes.items():
        d.rectangle([x0, y0, x1 - 1, y1 - 1], outline=COLOURS[name], width=2)
    return im


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--seed", type=int, default=5000)
    a = ap.parse_args()
    t = time.time()
    ious = {r: [] for r in REGIONS}
    failures, panels = [], []
    for i in range(a.n):
        labels = [set(), {"metastasis"}, {"arthritis"}, {"metastasis", "arthritis"}][i % 4]
        scan = simulate_bone_scan(np.random.default_rng([a.seed, i]), labels)
        for view in ("ant", "post"):
            try:
                found = find_regions(scan.views[view])
            except RegionError as exc:
                failures.append(f"case {i} {view}: {exc}")
                for r in REGIONS:
                    ious[r].append(0.0)
                continue
            for r in REGIONS:
                ious[r].append(box_iou(found.boxes[r], scan.boxes[view][r]))
            if i < 4:
                panels.append(_draw(scan.views[view], found.boxes, scan.boxes[view]))
    res = {
        "what": "region boxes found on SYNTHETIC whole-body scans (scintix simulate) vs the simulator's true boxes",
        "scans": a.n,
        "views": 2 * a.n,
        "rng": f"default_rng([{a.seed}, i]); fractions were fitted on default_rng([99, 1000..1099])",
        "failures": failures,
        "seconds": round(time.time() - t, 1),
    }
    for r, v in ious.items():
        v = np.array(v)
        res[r] = {"mean_iou": round(float(v.mean()), 4), "median_iou": round(float(np.median(v)), 4), "frac_iou_ge_0.9": round(float((v >= 0.9).mean()), 4), "min_iou": round(float(v.min()), 4)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "regions.json").write_text(json.dumps(res, indent=2))
    from PIL import Image

    sheet = Image.new("RGB", (len(panels) * 262, 1024), "white")
    for k, p in enumerate(panels):
        sheet.paste(p, (k * 262, 0))
    sheet.save(RESULTS / "regions_simulated.png")
    print(json.dumps({r: res[r] for r in REGIONS}, indent=1), f"failures: {len(failures)}")
    try:
        import pydicom

        from scintix.data.dicom import read_nm

        path = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "JPGExtended.dcm")
        ant = read_nm(path).views["ant"]
        found = find_regions(ant)
        WORK.mkdir(parents=True, exist_ok=True)
        _draw(ant, found.boxes).save(WORK / "ge_nm_regions.png")
        print("real GE scan regions:", found.boxes, "->", WORK / "ge_nm_regions.png")
    except Exception as exc:  # the figure is a bonus; the numbers above are the result
        print("GE figure skipped:", exc)


if __name__ == "__main__":
    main()
