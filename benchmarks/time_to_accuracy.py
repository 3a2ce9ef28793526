"""Time to accuracy on BS-80K anterior crops: a plain PyTorch loop vs `scintix run`, same recipe.

    python benchmarks/time_to_accuracy.py [--epochs 16] [--seeds 0 1] [--targets 0.90 0.93 0.95]

Both arms train the `p1-thoracic` recipe's model (ResNet-18, 1 channel, dropout
0.2, 160x64) on the same patient-grouped split (the recipe's 70/20/10, seed 0),
with the same optimiser (AdamW, lr 5e-4, weight decay 1e-4), warm-up + cosine
schedule, balanced sampler, batch 32 and geometric + intensity augmentation, for
the same fixed number of epochs (no early stopping), and score the validation
AUC after every epoch. The clock starts before the data are read and includes
validation, so it is the wall time a user waits.

  plain  a loop as one writes it from the PyTorch tutorials: a Dataset that
         decodes, normalises and resizes each JPEG on every access, MONAI's
         per-sample RandAffine (scintix Augmenter) in the data path, fp32, NCHW,
         foreach AdamW, DataLoader(num_workers=0).
  ours   `scintix run` with the recipe unchanged: cached preprocessing, batched
         augmentation, autocast where the CPU has native bf16, channels-last
         when timing says so, fused AdamW, precise BatchNorm before validation.

Reports, per arm and seed, the wall time of the first epoch whose validation
AUC reaches each target, and the per-epoch curve. Writes
benchmarks/results/time_to_accuracy.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from _common import SHARED, WORK, require, write_result


def _cfg(data, epochs: int, seed: int):
    from scintix.config import load_config

    return load_config("p1-thoracic", [f"data.source={data}", f"train.epochs={epochs}", f"train.seed={seed}", "train.early_stop_patience=0",
                                       "train.class_balance=sampler",  # both arms draw balanced batches (the recipe's before 2026-12-01; the plain arm's sampler)
                                       "train.progress=false", "train.tensorboard=false", "eval.n_bootstrap=200"])


def plain_arm(cfg, epochs: int, seed: int) -> list[dict]:
    import torch
    from sklearn.metrics import roc_auc_score

    from scintix.data.datasets import preprocess
    from scintix.data.prepare import prepare_data
    from scintix.models import create_model
    from scintix.transforms.augment import Augmenter

    start = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    d, t = cfg.data, cfg.train
    prepared = prepare_data(cfg, WORK / "tta-plain", write=False)
    aug = Augmenter(cfg.augment)

    class Images(torch.utils.data.Dataset):
        def __init__(self, samples, train: bool):
            self.samples, self.train = samples, train

        def __len__(self):
            return len(self.samples)

        def __getitem__(self, i):
            s = self.samples[i]
            x = preprocess(s.paths, tuple(d.image_size), d.normalize, tuple(d.percentiles))  # decoded and resized on every access
            if self.train:
                x = aug(x, int(rng.integers(2**31)))
            return torch.from_numpy(np.ascontiguousarray(x)), int(s.target)

    train, val = Images(prepared.samples["train"], True), Images(prepared.samples["val"], False)
    y = np.array([int(s.target) for s in train.samples])
    weights = 1.0 / np.bincount(y)[y]
    sampler = torch.utils.data.WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), len(y), replacement=True)
    train_loader = torch.utils.data.DataLoader(train, batch_size=t.batch_size, sampler=sampler, drop_last=True)
    val_loader = torch.utils.data.DataLoader(val, batch_size=t.batch_size)
    model = create_model(cfg.model.name, in_channels=1, num_classes=2, dropout=cfg.model.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    warm = t.warmup_epochs
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: (e + 1) / (warm + 1) if e < warm else 0.5 * (1 + np.cos(np.pi * (e - warm) / max(1, epochs - warm))))
    crit = torch.nn.CrossEntropyLoss()
    curve = []
    for epoch in range(epochs):
        model.train()
        for x, target in train_loader:
            loss = crit(model(x), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
        model.eval()
        probs, truth = [], []
        with torch.no_grad():
            for x, target in val_loader:
                probs.append(torch.softmax(model(x), 1)[:, 1].numpy())
                truth.append(target.numpy())
        auc = float(roc_auc_score(np.concatenate(truth), np.concatenate(probs)))
        curve.append({"epoch": epoch + 1, "val_roc_auc": auc, "elapsed_s": round(time.perf_counter() - start, 2)})
        print("plain", seed, curve[-1], file=sys.stderr, flush=True)
    return curve


def ours_arm(cfg, epochs: int, seed: int) -> list[dict]:
    from scintix.training.run import train_run

    run_dir = WORK / f"tta-ours-{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)
    train_run(cfg, run_dir)  # elapsed_s in history.csv counts from the call, data preparation included
    with open(run_dir / "history.csv") as fh:
        curve = [{"epoch": int(r["epoch"]), "val_roc_auc": float(r["val_roc_auc"]), "elapsed_s": float(r["elapsed_s"])} for r in csv.DictReader(fh)]
    for row in curve:
        print("ours", seed, row, file=sys.stderr, flush=True)
    return curve


def time_to(curve: list[dict], target: float) -> dict:
    hit = next((r for r in curve if r["val_roc_auc"] >= target), None)
    return {"epoch": hit["epoch"], "seconds": hit["elapsed_s"]} if hit else {"epoch": None, "seconds": None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--targets", type=float, nargs="+", default=[0.90, 0.93, 0.95])
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    a = ap.parse_args()
    data = require(SHARED / "bs80k-chest-region")
    if a.arm:  # one arm, one seed, in its own process
        fn = plain_arm if a.arm == "plain" else ours_arm
        print(json.dumps(fn(_cfg(data, a.epochs, a.seeds[0]), a.epochs, a.seeds[0])))
        return
    from scintix.runtime import ALLOCATOR_ENV, cpu_has_native_bf16

    plain_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    runs: dict[str, dict] = {"plain": {}, "ours": {}}
    for seed in a.seeds:  # arms alternate, so a slow spell of the machine hits both
        for arm in ("plain", "ours"):
            env = plain_env if arm == "plain" else {**plain_env, **ALLOCATOR_ENV}  # ours as the CLI runs it: allocator thresholds set
            out = subprocess.run([sys.executable, __file__, "--arm", arm, "--epochs", str(a.epochs), "--seeds", str(seed)], env=env, stdout=subprocess.PIPE, text=True, check=True)
            curve = json.loads(out.stdout.strip().splitlines()[-1])
            runs[arm][str(seed)] = {"curve": curve, "time_to": {str(tg): time_to(curve, tg) for tg in a.targets},
                                    "best_val_roc_auc": max(r["val_roc_auc"] for r in curve), "total_s": curve[-1]["elapsed_s"]}
    summary = {}
    for tg in map(str, a.targets):
        row = {}
        for arm in runs:
            secs = [r["time_to"][tg]["seconds"] for r in runs[arm].values()]
            row[arm] = {"seconds_per_seed": secs, "reached": sum(s is not None for s in secs)}
        both = [(p, o) for p, o in zip(row["plain"]["seconds_per_seed"], row["ours"]["seconds_per_seed"]) if p is not None and o is not None]
        row["speedup_per_seed"] = [round(p / o, 2) for p, o in both]
        summary[tg] = row
    totals = {arm: float(np.mean([r["total_s"] for r in runs[arm].values()])) for arm in runs}
    write_result("time_to_accuracy", {
        "data": "BS-80K anterior right-chest crops (../shared/data/bs80k-chest-region), p1-thoracic split (70/20/10 by patient, seed 0); AUC on the validation split",
        "recipe": "p1-thoracic, fixed epochs, no early stopping", "epochs": a.epochs, "seeds": a.seeds, "native_bf16": cpu_has_native_bf16(),
        "time_to_target": summary, "mean_total_s": totals, "speedup_total": totals["plain"] / totals["ours"], "runs": runs,
    })
    print({tg: (r["plain"]["seconds_per_seed"], r["ours"]["seconds_per_seed"]) for tg, r in summary.items()}, totals)


if __name__ == "__main__":
    main()
