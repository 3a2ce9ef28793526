"""Does the eval-mode model match the trained one? BatchNorm statistics on P1 (BS-80K anterior).

    python benchmarks/bn_recalibration.py [--before RUN] [--after RUN]

``before``: the p1-thoracic recipe with ``train.precise_bn=false`` (running
statistics as training left them, the behaviour before the fix); ``after``:
the recipe as it is (statistics recomputed on un-augmented training images
before every validation, so selection sees the eval-mode model). Missing run
folders are trained (about 12 min each on the 2-core CPU). For each: the mean
|train-mode - eval-mode| probability on training images (20 batches of 32, the
training batch size) and val/test ROC AUC; for ``before`` also the same
checkpoint with its statistics recomputed after the fact. Also the quickstart
(synthetic) before/after, where the stale statistics collapsed the model.
Writes benchmarks/results/bn_recalibration.json.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import SHARED, WORK, reexec_with_allocator_tuning, require, write_result


def _train(recipe: str, run_dir: Path, overrides: list[str]) -> Path:
    from scintix.config import load_config
    from scintix.training.run import train_run

    if not (run_dir / "eval" / "test" / "metrics.json").is_file():
        import shutil

        shutil.rmtree(run_dir, ignore_errors=True)
        train_run(load_config(recipe, ["train.progress=false", "train.tensorboard=false", *overrides]), run_dir)
    return run_dir


def measure(run_dir: Path, recompute: bool) -> dict:
    import torch
    from torch.utils.data import DataLoader

    from scintix.checkpoint import load_checkpoint, load_model_state
    from scintix.data.prepare import prepare_data
    from scintix.evaluation.metrics import binary_metrics
    from scintix.runfolder import build_model_for_run, load_run_config
    from scintix.training.batchnorm import recompute_batchnorm, train_eval_gap
    from scintix.training.data import build_datasets, training_like_batches
    from scintix.training.loop import predict, probabilities

    cfg = load_run_config(run_dir)
    data = prepare_data(cfg, run_dir)
    ds = build_datasets(replace(cfg, augment=replace(cfg.augment, enabled=False)), data)
    model = build_model_for_run(cfg, len(data.classes))
    load_model_state(model, load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"], run_dir)
    dev = torch.device("cpu")

    def training_batches(n: int):
        # drawn as in training (the balanced sampler when the recipe uses it), not augmented
        for batch in training_like_batches(ds["train"], cfg, 0, n * cfg.train.batch_size):
            yield batch["image"]

    def state() -> dict:
        aucs = {}
        for s in ("val", "test"):
            p = predict(model, DataLoader(ds[s], batch_size=64), dev, "binary")
            aucs[s] = binary_metrics(ds[s].targets[p["index"]], p["probs"][:, 1], 0.5)["roc_auc"]
        gaps = [train_eval_gap(model, x, lambda z: probabilities(z, "binary")) for x in training_batches(20)]
        return {"val_roc_auc": aucs["val"], "test_roc_auc": aucs["test"], "train_eval_gap_mean": float(np.mean(gaps)), "train_eval_gap_max": float(np.max(gaps)), "gap_batches": len(gaps)}

    out = {"run_dir": str(run_dir), "as_saved": state()}
    if recompute:
        out["recomputed_after_training"] = {"batches": recompute_batchnorm(model, training_batches(cfg.train.precise_bn_images // cfg.train.batch_size)), **state()}
    for name in ("health", "thresholds", "calibration"):
        f = run_dir / "eval" / f"{name}.json"
        if f.is_file():
            out[name] = json.loads(f.read_text())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", type=Path, default=WORK / "p1-ant-stale-bn")
    ap.add_argument("--after", type=Path, default=WORK / "p1-ant")
    ap.add_argument("--quickstart-before", type=Path, default=WORK / "quickstart-stale-bn")
    ap.add_argument("--quickstart-after", type=Path, default=WORK / "quickstart")
    a = ap.parse_args()
    data = require(SHARED / "bs80k-chest-region")
    real = [f"data.source={data}", "data.view_filter=ant", "train.class_balance=sampler"]  # as measured: the recipe drew balanced batches until 2026-12-01
    results = {
        "p1_before": measure(_train("p1-thoracic", a.before, [*real, "train.precise_bn=false"]), recompute=True),
        "p1_after": measure(_train("p1-thoracic", a.after, real), recompute=False),
        "quickstart_before": measure(_train("quickstart", a.quickstart_before, ["train.precise_bn=false"]), recompute=True),
        "quickstart_after": measure(_train("quickstart", a.quickstart_after, []), recompute=False),
    }
    write_result("bn_recalibration", {"data": "P1: BS-80K right-chest crops, anterior, seed 0; quickstart: built-in SYNTHETIC crops", "runs": results})
    for k, v in results.items():
        print(k, {m: round(x, 4) for m, x in v["as_saved"].items() if isinstance(x, float)}, {m: round(x, 4) for m, x in v.get("recomputed_after_training", {}).items() if isinstance(x, float)})


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
