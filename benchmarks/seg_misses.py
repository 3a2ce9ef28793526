"""Where our segmenters miss lesions on simulated bone scans: each test lesion, by the site its report names.

Reads runs of ``text_segmentation.py`` (never trains): each run's test masks (``eval/test/masks``, at its threshold;
a text model's with its own report) and the simulator's files: ``masks/`` holds each finding's id per pixel and
``cases/<patient>.json`` its site. A lesion is missed when no predicted pixel touches it (the runs' own "detected"
rule). Also each lesion's contrast: its mean model input over the mean of a ring 1-3 pixels around it.

    python benchmarks/seg_misses.py --sim-patients 600 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from _common import WORK, invocation, require, write_result

MODELS = ("warm_unet", "warm_text_unet")


def site_group(site: str) -> str:
    """'left 5th rib' -> 'rib', 'T9 vertebra' -> 'vertebra', 'right ilium' -> 'ilium' (the site without side or number)."""
    words = [w for w in re.split(r"\s+", site.lower()) if w not in ("left", "right") and not re.fullmatch(r"\d+(st|nd|rd|th)|[tlc]\d+", w)]
    return " ".join(words) or site


def lesion_rows(run_dir: Path, data: Path) -> list[dict]:
    """One row per test lesion: patient, view, finding id, site, site group, size, contrast, missed."""
    from PIL import Image
    from scipy import ndimage

    from scintix.data.io import read_image
    from scintix.data.masks import read_mask
    from scintix.transforms.functional import resize_pad_mask

    rows = []
    with open(run_dir / "eval" / "test" / "per_image.csv") as fh:
        for r in csv.DictReader(fh):
            if float(r["truth_pixels"] or 0) == 0:
                continue
            image = Path(r["path"])
            pred = np.asarray(Image.open(run_dir / "eval" / "test" / r["mask_png"])) > 0
            ids = np.asarray(resize_pad_mask(read_mask(data / "masks" / image.name, "values", 256), pred.shape)).reshape(pred.shape)
            arr, _ = read_image(image, channels=1)
            x = np.asarray(resize_pad_mask(arr[0], pred.shape), float).reshape(pred.shape)  # nearest, as the mask: contrast only
            case = json.loads((data / "cases" / f"{r['patient_id']}.json").read_text())
            sites = {f["id"]: f["site"] for f in case["findings"]}
            for fid in (int(v) for v in np.unique(ids) if v):
                lesion = ids == fid
                ring = ndimage.binary_dilation(lesion, iterations=3) & ~ndimage.binary_dilation(lesion, iterations=1)
                rows.append({"patient_id": r["patient_id"], "view": image.stem.rsplit("_", 1)[-1], "finding": fid, "site": sites[fid],
                             "group": site_group(sites[fid]), "pixels": int(lesion.sum()),
                             "contrast": float(x[lesion].mean() / max(x[ring].mean(), 1e-9)) if ring.any() else float("nan"),
                             "missed": not bool((lesion & pred).any())})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim-patients", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    tag = "" if args.sim_patients == 200 else f"n{args.sim_patients}-"
    data = require(WORK / ("sim-p4-text" if args.sim_patients == 200 else f"sim-p4-text-n{args.sim_patients}"))
    out: dict = {**invocation(), "synthetic": True, "data": f"{data.name}: SYNTHETIC whole-body bone scans, test split", "runs": {}}
    for model in MODELS:
        for seed in args.seeds:
            run = require(WORK / f"text-seg-{tag}p4zh-{model}-s{seed}{'-view' if model == 'warm_text_unet' else ''}")
            rows = lesion_rows(run, data)
            n, missed = Counter(r["group"] for r in rows), Counter(r["group"] for r in rows if r["missed"])
            contrast = {k: float(np.nanmedian([r["contrast"] for r in rows if r["missed"] == k])) if any(r["missed"] == k for r in rows) else None
                        for k in (True, False)}
            out["runs"][f"{model}-s{seed}"] = {"run": str(run), "lesions": len(rows), "missed": sum(missed.values()),
                                               "by_group": {g: {"lesions": n[g], "missed": missed[g]} for g in sorted(n)},
                                               "median_contrast_missed": contrast[True], "median_contrast_found": contrast[False]}
            print(f"{model}-s{seed}: missed {sum(missed.values())}/{len(rows)}", dict(missed), flush=True)
    write_result("seg_misses", {f"p4zh_view_{tag.rstrip('-') or 'n200'}": out})


if __name__ == "__main__":
    main()
