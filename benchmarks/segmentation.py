"""Segmentation benchmarks: U-Net on the real QaTa-COV19 chest X-rays, and P4's image path on simulated bone scans.

    python benchmarks/segmentation.py [--only qata|p4] [--epochs N] [--size H W]

qata: the ``qata-unet`` recipe on ../shared/data/qata-cov19-text (train: 85 % of
the train patients, selection: the other 15 %, reported: the dataset's val
split as "test"; the official test split is held out elsewhere). p4: the
``p4-unet`` recipe on 300 SYNTHETIC whole-body scans (``scintix simulate``,
metastases only). Writes benchmarks/results/segmentation.json: Dice, IoU,
pooled Dice, HD95, lesion detection and false positives on lesion-free scans
with patient-level 95 % CIs, training time and images/s.
"""

from __future__ import annotations

import argparse
import shutil
import time

from _common import (
    RESULTS,
    SHARED,
    WORK,
    invocation,
    reexec_with_allocator_tuning,
    require,
    summarize_run,
    write_result,
)


def _run(recipe: str, data, name: str, extra: list[str]) -> dict:
    from scintix.config import load_config
    from scintix.training.run import train_run

    overrides = [f"data.source={data}", "train.progress=false", "train.tensorboard=false", *extra]
    cfg = load_config(recipe, overrides)
    run_dir = WORK / name
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.perf_counter()
    train_run(cfg, run_dir)
    out = {"recipe": recipe, "overrides": overrides, "wall_seconds": round(time.perf_counter() - start, 1), **summarize_run(run_dir)}
    rates = [float(r["train_images_per_s"]) for r in out["history"]]
    out["train_images_per_s_median"] = sorted(rates)[len(rates) // 2] if rates else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["qata", "p4"], action="append")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--size", type=int, nargs=2, default=None)
    a = ap.parse_args()
    extra = ([f"train.epochs={a.epochs}"] if a.epochs else []) + ([f"data.image_size=[{a.size[0]},{a.size[1]}]"] if a.size else [])
    import json

    import torch

    previous = RESULTS / "segmentation.json"
    results = json.loads(previous.read_text())["runs"] if previous.is_file() else {}  # runs not repeated now are kept

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    for name in a.only or ["qata", "p4"]:
        if name == "qata":
            data = require(SHARED / "qata-cov19-text")
            results["qata"] = {**_run("qata-unet", data, "qata-unet", extra), **invocation()}
        else:
            from scintix.cli.__main__ import main as cli

            sim = WORK / "sim-p4"
            if not (sim / "manifest.csv").is_file():
                cli(["simulate", str(sim), "--n", "300", "--seed", "0", "--prevalence", "metastasis=0.6", "arthritis=0"])
            results["p4"] = {**_run("p4-unet", sim, "p4-unet", extra), **invocation()}
        write_result("segmentation", {"device": device, "runs": results})
        res = results[name]
        per = res.get("test", {}).get("per_class", {})
        for cls, m in per.items():
            print(name, cls, {k: round(m[k]["value"], 4) for k in ("dice", "global_dice", "lesion_sensitivity", "false_positive_scan_rate") if m[k]["value"] is not None})


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
