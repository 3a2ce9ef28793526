"""Files of an evaluated segmentation split: per-image metrics, predicted masks, a gallery of overlays, the table.

``per_image.csv``: one row per image and foreground class (Dice, IoU, HD95,
pixel counts, lesions found / missed / false, whether a lesion-free scan got
a false positive). ``masks/``: the predicted label map of every image as a
PNG (pixel value = class index), named after the image. ``gallery/``: overlay
PNGs (image, truth contour, prediction fill) of the best and worst lesion
scans by Dice and of the lesion-free scans with the largest false positives;
``gallery.json`` lists them with their metrics, for the report.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..tasks.segmentation import SEG_TABLE_METRICS

__all__ = ["write_seg_outputs", "format_seg_table", "overlay_mask_figure", "save_mask_png", "safe_stem", "unique_stems"]


def safe_stem(key: str) -> str:
    """A file-name stem for a sample key (paths, ``#view`` fragments, ``|`` joined views)."""
    first = key.split("|")[0]
    frag = "_" + first.rsplit("#", 1)[1] if "#" in first else ""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(first.split("#")[0]).stem + frag)[:80]


def unique_stems(keys) -> dict[str, str]:
    """:func:`safe_stem` per key, with a short hash of the full key added where two keys share a stem (``a/x.png``, ``b/x.png``)."""
    import hashlib
    from collections import Counter

    stems = {k: safe_stem(k) for k in keys}
    count = Counter(stems.values())
    return {k: s if count[s] == 1 else f"{s}_{hashlib.sha1(k.encode()).hexdigest()[:8]}" for k, s in stems.items()}


def save_mask_png(path: Path, label: np.ndarray, synthetic: bool = False) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_text("scintix", "predicted label map (pixel value = class index)" + (" -- SYNTHETIC data" if synthetic else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(label, np.uint8)).save(path, pnginfo=info)


def overlay_mask_figure(image: np.ndarray, truth: np.ndarray | None, pred: np.ndarray, title: str):
    """A matplotlib figure: the scan (first channel), the true mask as a green contour, the prediction in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = np.asarray(image)[0] if np.asarray(image).ndim == 3 else np.asarray(image)
    h, w = img.shape
    fig, ax = plt.subplots(figsize=(max(3.2 * w / h + 0.4, 3.0), 3.6 if h > w else 3.4), dpi=110)
    ax.imshow(img, cmap="gray_r" if img.mean() < 0.5 * (img.max() + img.min()) else "gray")
    ax.imshow(np.ma.masked_where(pred == 0, pred), cmap="autumn", alpha=0.45, vmin=0, vmax=max(1, int(pred.max())))
    if truth is not None and truth.any():
        ax.contour(truth > 0, levels=[0.5], colors="lime", linewidths=0.8)
    ax.set_title(title, fontsize=7)
    ax.axis("off")
    fig.tight_layout()
    return fig


def write_seg_outputs(out_dir: Path, samples: Sequence, images: np.ndarray, truths: np.ndarray, preds: np.ndarray, rows: Sequence[dict], classes: Sequence[str],
                      synthetic: bool = False, gallery: int = 4, figures: bool = True) -> None:
    """Write ``per_image.csv``, ``masks/`` and ``gallery/`` (see the module docstring) into ``out_dir``; without ``figures``
    ``gallery.json`` still lists the cases, with no overlay (``png`` null)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_fg = max(1, len(classes) - 1)
    fields = ["path", "patient_id", "class", "dice", "iou", "hd95", "truth_pixels", "pred_pixels", "true_lesions", "detected_lesions", "false_positive_lesions", "false_positive_scan", "mask_png"]
    stems = [f"{i:05d}_{safe_stem(s.key)}" for i, s in enumerate(samples)]
    with open(out_dir / "per_image.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for j, r in enumerate(rows):
            i = j // n_fg
            w.writerow({"path": samples[i].key, "patient_id": samples[i].patient_id, "mask_png": f"masks/{stems[i]}.png",
                        **{k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}})
    for i, stem in enumerate(stems):
        save_mask_png(out_dir / "masks" / f"{stem}.png", preds[i], synthetic)
    # gallery: by the first foreground class's Dice
    first = [r for j, r in enumerate(rows) if j % n_fg == 0]
    lesion = [i for i, r in enumerate(first) if r["truth_pixels"] > 0]
    lesion.sort(key=lambda i: first[i]["dice"])
    free_fp = sorted((i for i, r in enumerate(first) if r["truth_pixels"] == 0 and r["pred_pixels"] > 0), key=lambda i: -first[i]["pred_pixels"])
    picks = [("best", i) for i in lesion[::-1][:gallery]] + [("worst", i) for i in lesion[:gallery] if i not in lesion[::-1][:gallery]] + [("false positive on a lesion-free scan", i) for i in free_fp[:gallery]]
    listed = []
    tag = " -- SYNTHETIC" if synthetic else ""
    for kind, i in picks:
        r = first[i]
        dice = "n/a" if math.isnan(r["dice"]) else f"{r['dice']:.3f}"
        png = None
        if figures:
            import matplotlib.pyplot as plt

            title = f"{kind}: Dice {dice}, lesions {r['detected_lesions']}/{r['true_lesions']} found, {r['false_positive_lesions']} false{tag}\n{Path(samples[i].key.split('|')[0]).name}"
            fig = overlay_mask_figure(images[i], truths[i], preds[i], title)
            png = f"gallery/{stems[i]}.png"
            (out_dir / "gallery").mkdir(exist_ok=True)
            fig.savefig(out_dir / png)
            plt.close(fig)
        listed.append({"kind": kind, "path": samples[i].key, "png": png, "report": getattr(samples[i], "text", None) or "", **{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}})
    (out_dir / "gallery.json").write_text(json.dumps(listed, indent=2))


def _fmt(v: dict) -> str:
    value = v.get("value")
    if value is None or not math.isfinite(value):
        return "n/a"
    lo, hi = v.get("ci_low"), v.get("ci_high")
    return f"{value:.3f}" + (f" [{lo:.3f}, {hi:.3f}]" if lo is not None and math.isfinite(lo) else "")


def _threshold_cell(res: dict, cls: str) -> str:
    """The split's threshold; a report-guided run's split with and without reports: both ("0.45, 3 without report 0.30")."""
    cut = res.get("threshold_cut") or {}
    value = f"{res['thresholds'].get(cls, float('nan')):.2f}"
    if 0 < cut.get("scans_without_report", 0) < res["n"]:
        value += f", {cut['scans_without_report']} without report {cut['no_report'].get(cls, float('nan')):.2f}"
    return value


def format_seg_table(results: dict[str, dict], synthetic: bool = False) -> str:
    """Plain text: one row per metric, one column per split (value [95% CI])."""
    lines = ["*** SYNTHETIC DATA: these numbers say nothing about real scans ***"] if synthetic else []
    for cls in next(iter(results.values()))["per_class"]:
        header = f"{'class ' + cls:<34}" + "".join(f"{s:<28}" for s in results)
        lines += [header, "-" * len(header)]
        for m in SEG_TABLE_METRICS:
            lines.append(f"{m:<34}" + "".join(f"{_fmt(r['per_class'][cls][m]):<28}" for r in results.values()))
        lines.append(f"{'scans with lesion / lesion-free':<34}" + "".join(f"{str(r['per_class'][cls]['images_with_lesion']) + ' / ' + str(r['per_class'][cls]['lesion_free_images']):<28}" for r in results.values()))
        lines.append(f"{'threshold':<34}" + "".join(f"{_threshold_cell(r, cls):<28}" for r in results.values()))
        lines.append(f"{'n (patients)':<34}" + "".join(f"{str(r['n']) + ' (' + str(r['patients']) + ')':<28}" for r in results.values()))
    lines.append("dice/iou/hd95: mean over scans with a lesion; global_dice: pooled over all scans; false_positive_scan_rate: over lesion-free scans")
    return "\n".join(lines)
