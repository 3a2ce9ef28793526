"""Stored explanations of an evaluated classification run, for the report to render.

``write_explanations(run)`` picks correct and wrong cases of the test split
(val when there is no test), the true classes taking turns so a rare class is
shown too, writes one Grad-CAM overlay PNG per case under ``eval/explain/``
with ``gallery.json`` listing them, and scores every CAM method (and a random
ranking) by deletion/insertion on the first N images into
``eval/faithfulness.json``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch

__all__ = ["write_explanations"]


def _round_robin(indices: list[int], rows: list[dict], n: int) -> list[int]:
    """Up to ``n`` cases taking each true class in turn, so a rare class is shown too."""
    by_class: dict[str, list[int]] = {}
    for i in indices:
        by_class.setdefault(rows[i]["target"], []).append(i)
    queues = [list(v) for _, v in sorted(by_class.items())]
    out: list[int] = []
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return out


def write_explanations(run_dir: str | Path, gallery: int = 4, faithfulness_n: int = 16) -> dict:
    """Write ``eval/explain/`` (gallery) and ``eval/faithfulness.json``; returns the faithfulness dict ({} when nothing to explain)."""
    import matplotlib.pyplot as plt

    from ..data.datasets import preprocess
    from ..data.io import ImageReadError
    from ..runfolder import load_run
    from .faithfulness import deletion_insertion, random_maps
    from .overlay import overlay_figure
    from .run import channel_names, explain_arrays

    run_dir = Path(run_dir)
    split = "test" if (run_dir / "eval" / "test" / "predictions.csv").is_file() else "val"
    pred_file = run_dir / "eval" / split / "predictions.csv"
    if not pred_file.is_file():
        return {}
    run = load_run(run_dir)
    d = run.cfg.data
    rows = list(csv.DictReader(open(pred_file)))
    arrays, kept = [], []
    for r in rows:
        try:
            arrays.append(preprocess(tuple(r["path"].split("|")), tuple(d.image_size), d.normalize, tuple(d.percentiles), windows=d.windows))
            kept.append(r)
        except ImageReadError:
            continue
    out_dir = run_dir / "eval" / "explain"
    (out_dir / "gallery").mkdir(parents=True, exist_ok=True)
    correct = [i for i, r in enumerate(kept) if r["predicted"] == r["target"]]
    wrong = [i for i, r in enumerate(kept) if r["predicted"] != r["target"]]
    chosen = _round_robin(correct, kept, gallery) + _round_robin(wrong, kept, gallery)
    cases = []
    if chosen:
        names, cmap = channel_names(run.cfg), ("gray" if d.windows else "gray_r")
        maps, targets, probs = explain_arrays(run, [arrays[i] for i in chosen], "gradcam")
        for k, i in enumerate(chosen):
            r = kept[i]
            fig = overlay_figure(arrays[i], maps[k], f"true {r['target']} / predicted {r['predicted']}", names, cmap)
            png = f"gallery/{k:02d}.png"
            fig.savefig(out_dir / png, bbox_inches="tight")
            plt.close(fig)
            cases.append({"png": png, "correct": i in correct, "explained": run.classes[targets[k]], "prob": float(probs[k][targets[k]]), "name": Path(r["path"].split("|")[0]).name})
    (out_dir / "gallery.json").write_text(json.dumps({"split": split, "correct": len(correct), "wrong": len(wrong), "cases": cases}, indent=2))
    if not kept:
        return {}
    # faithfulness on the first N images: every method + a random ranking; each image's predicted class is what its map must account for
    idx = list(range(min(faithfulness_n, len(kept))))
    x = torch.from_numpy(np.stack([arrays[i] for i in idx])).to(run.device)
    with torch.no_grad():
        predicted = run.model(x.float()).argmax(1).cpu().numpy()
    faith: dict = {"split": split, "images": len(idx), "steps": 10, "metric": "AUC of the target probability (calibrated) vs fraction of pixels deleted / inserted (blurred baseline)",
                   "target": "each image's predicted class (top class; multi-label: most probable label)"}
    methods = {}
    for method in ("gradcam", "gradcam++", "scorecam", "occlusion", "random"):
        maps = random_maps((len(idx), *x.shape[-2:])) if method == "random" else explain_arrays(run, [arrays[i] for i in idx], method, targets=predicted)[0]
        scores = deletion_insertion(run.model, x, maps, predicted, run.task)
        methods[method] = {"deletion": float(scores["deletion"].mean()), "insertion": float(scores["insertion"].mean()), "insertion_minus_deletion": float((scores["insertion"] - scores["deletion"]).mean())}
    faith["methods"] = methods
    best = max((m for m in methods if m != "random"), key=lambda m: methods[m]["insertion_minus_deletion"])
    if methods[best]["insertion_minus_deletion"] <= methods["random"]["insertion_minus_deletion"] + 1e-6:
        best = "none (no method beats a random ranking)"
    faith["most_faithful"] = best
    (run_dir / "eval" / "faithfulness.json").write_text(json.dumps(faith, indent=2))
    return faith
