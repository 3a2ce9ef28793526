"""Where our segmenters miss lesions on simulated bone scans: each test lesion, by the site its report names.

Reads runs of ``text_segmentation.py`` (never trains): each run's test masks (``eval/test/masks``, at its threshold;
a text model's with its own report) and the simulator's files: ``masks/`` holds each finding's id per pixel and
``cases/<patient>.json`` its site. A lesion is missed when no predicted pixel touches it (the runs' own "detected"
rule). Also each lesion's contrast (its mean counts over those of a ring 1-3 pixels around it, at the model's size),
for the test lesions of each run and, by site group, for every lesion of the data set (which needs no run). A run
folder that is gone keeps its earlier record in the results file.

    python benchmarks/seg_misses.py --sim-patients 600 --seeds 0 1 2 [--text-suffix=-view-priorin]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from _common import WORK, earlier_entries, invocation, require, write_result

MODELS = ("warm_unet", "warm_text_unet")


def site_group(site: str) -> str:
    """'left 5th rib' -> 'rib', 'T9 vertebra' -> 'vertebra', 'right ilium' -> 'ilium' (the site without side or number)."""
    words = [w for w in re.split(r"\s+", site.lower()) if w not in ("left", "right") and not re.fullmatch(r"\d+(st|nd|rd|th)|[tlc]\d+", w)]
    return " ".join(words) or site


def scan_lesions(image: Path, data: Path, shape: tuple[int, int]) -> list[tuple[dict, np.ndarray]]:
    """Each lesion of one simulated scan at the model's size ``shape``: its row (patient, view, finding id, site, site
    group, pixels, contrast) and its pixels. Contrast: the lesion's mean counts over the mean of a ring 1-3 pixels
    around it, the image resized as the model's input is (``resize_pad``), the finding ids by nearest neighbour."""
    from scipy import ndimage

    from scintix.data.io import read_image
    from scintix.data.masks import read_mask
    from scintix.transforms.functional import resize_pad, resize_pad_mask

    ids = np.asarray(resize_pad_mask(read_mask(data / "masks" / image.name, "values", 256), shape)).reshape(shape)
    if not ids.any():
        return []
    arr, _ = read_image(image, channels=1)
    x = np.asarray(resize_pad(arr, shape), float).reshape(shape)
    patient, view = image.stem.rsplit("_", 1)
    sites = {f["id"]: f["site"] for f in json.loads((data / "cases" / f"{patient}.json").read_text())["findings"]}
    out = []
    for fid in (int(v) for v in np.unique(ids) if v):
        lesion = ids == fid
        ring = ndimage.binary_dilation(lesion, iterations=3) & ~ndimage.binary_dilation(lesion, iterations=1)
        out.append(({"patient_id": patient, "view": view, "finding": fid, "site": sites[fid], "group": site_group(sites[fid]),
                     "pixels": int(lesion.sum()), "contrast": float(x[lesion].mean() / max(x[ring].mean(), 1e-9)) if ring.any() else float("nan")},
                    lesion))
    return out


def lesion_rows(run_dir: Path, data: Path) -> list[dict]:
    """One row per test lesion of a run: :func:`scan_lesions`' row and ``missed`` (no predicted pixel touches it)."""
    from PIL import Image

    rows = []
    with open(run_dir / "eval" / "test" / "per_image.csv") as fh:
        for r in csv.DictReader(fh):
            if float(r["truth_pixels"] or 0) == 0:
                continue
            pred = np.asarray(Image.open(run_dir / "eval" / "test" / r["mask_png"])) > 0
            rows += [{**row, "missed": not bool((lesion & pred).any())} for row, lesion in scan_lesions(Path(r["path"]), data, pred.shape)]
    return rows


def contrast_by_group(rows: list[dict]) -> dict:
    """Median and quartiles of the lesions' contrast, per site group."""
    groups: dict[str, list[float]] = {}
    for r in rows:
        if np.isfinite(r["contrast"]):
            groups.setdefault(r["group"], []).append(r["contrast"])
    return {g: {"lesions": len(v), "median": round(float(np.median(v)), 3), "q25": round(float(np.percentile(v, 25)), 3),
                "q75": round(float(np.percentile(v, 75)), 3)} for g, v in sorted(groups.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim-patients", type=int, default=600)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--image-size", type=int, nargs=2, default=[256, 64], help="the runs' model size (for the lesions of the whole data set)")
    ap.add_argument("--text-suffix", default="-view", help="the text runs' folder suffix: -view, or e.g. -view-priorin, given as --text-suffix=-view-priorin (text_segmentation.py "
                                                           "--prior-input; key suffix _priorin, its own U-Nets)")
    args = ap.parse_args()
    tag = "" if args.sim_patients == 200 else f"n{args.sim_patients}-"
    key = f"p4zh_view_{tag.rstrip('-') or 'n200'}" + "".join(f"_{p}" for p in args.text_suffix.split("-")[2:])
    data = require(WORK / ("sim-p4-text" if args.sim_patients == 200 else f"sim-p4-text-n{args.sim_patients}"))
    entries = earlier_entries("seg_misses")
    earlier = entries.get(key, {})
    every = [row for image in sorted((data / "images").glob("*.png")) for row, _ in scan_lesions(image, data, tuple(args.image_size))]
    out: dict = {**invocation(), "synthetic": True, "data": f"{data.name}: SYNTHETIC whole-body bone scans",
                 "contrast_by_group": {"scans": "every scan of the data set (all splits, both views)", "image_size": args.image_size,
                                       "groups": contrast_by_group(every)}, "runs": {}}
    for model in MODELS:
        for seed in args.seeds:
            name, run = f"{model}-s{seed}", WORK / f"text-seg-{tag}p4zh-{model}-s{seed}{args.text_suffix if model == 'warm_text_unet' else ''}"
            if not run.is_dir():  # the run folders are not kept: an earlier record of the run stays
                if name in earlier.get("runs", {}):
                    out["runs"][name] = earlier["runs"][name]
                    print(f"{name}: {run} absent, its earlier record kept", flush=True)
                continue
            rows = lesion_rows(run, data)
            n, missed = Counter(r["group"] for r in rows), Counter(r["group"] for r in rows if r["missed"])
            contrast = {k: float(np.nanmedian([r["contrast"] for r in rows if r["missed"] == k])) if any(r["missed"] == k for r in rows) else None
                        for k in (True, False)}
            out["runs"][name] = {"run": str(run), "code": out["code"], "lesions": len(rows), "missed": sum(missed.values()),
                                 "by_group": {g: {"lesions": n[g], "missed": missed[g]} for g in sorted(n)},
                                 "median_contrast_missed": contrast[True], "median_contrast_found": contrast[False]}
            print(f"{name}: missed {sum(missed.values())}/{len(rows)}", dict(missed), flush=True)
    if "note" in earlier:
        out["note"] = earlier["note"]
    write_result("seg_misses", {**entries, key: out})  # other settings' entries stay


if __name__ == "__main__":
    main()
