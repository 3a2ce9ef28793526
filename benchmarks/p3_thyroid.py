"""P3 on SYNTHETIC thyroid scans: plain ResNet-18, cross-feature ResNet one stage, two stages, two stages + DCGAN/SRGAN images.

    python benchmarks/p3_thyroid.py [--seeds 0 1 2] [--n 600] [--ratio 0.5] [--gan-epochs 30] [--sr-epochs 10]

Data: ``scintix simulate --mode thyroid`` (SYNTHETIC, 128x128, used at 64x64),
split fixed (seed 0), the same val/test patients in every arm. Arms:
  plain       resnet18, one stage (``stages=[]``), all training images
  cross_1     resnet_crossfeature, one stage, all training images
  cross_2     ``p3-thyroid`` as shipped: stage 1 single-feature images, stage 2 cross-training
  cross_2_gan the same + generated images: a DCGAN at 32x32 on the training split, its images
              up-sampled x2 by an SRGAN trained on the training split (P3's pipeline),
              ``data.generated_ratio`` generated per real training image
Per arm and seed: test macro ROC-AUC, sample-based accuracy/F1 (P3 reports accuracy, recall,
precision, specificity, F1 > 0.938 on its private data). Writes benchmarks/results/p3_thyroid.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from _common import (
    WORK,
    arm_difference,
    clear_if_other,
    clear_stale_samples,
    reexec_with_allocator_tuning,
    write_progress,
    write_result,
)


def _run(data, name: str, extra: list[str]) -> dict:
    from scintix.config import load_config
    from scintix.training.stages import run_stages

    cfg = load_config("p3-thyroid", [f"data.source={data}", "train.progress=false", "train.tensorboard=false", *extra])
    out = WORK / f"{name}-{Path(data).name}"  # named by its data too: a run on another --n is never reused
    start = time.perf_counter()
    if cfg.stages:
        final = run_stages(cfg, out)[-1]  # finished stages are skipped
    else:
        from scintix.training.run import train_run

        final = out
        if not (out / "eval" / "test" / "metrics.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            train_run(cfg, out)
    m = json.loads((final / "eval" / "test" / "metrics.json").read_text())
    return {"run_dir": str(final), "wall_seconds_this_call": round(time.perf_counter() - start, 1), "macro_roc_auc": m["macro"]["roc_auc"],
            "per_class_roc_auc": {c: v["roc_auc"]["value"] for c, v in m["per_class"].items()},
            "sample_based": {k: v for k, v in m["sample_based"].items()}, "synthetic": True}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=600)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--gan-epochs", type=int, default=30)
    ap.add_argument("--sr-epochs", type=int, default=10)
    ap.add_argument("--arms", nargs="+", default=["plain", "cross_1", "cross_2", "cross_2_gan"])
    a = ap.parse_args()
    import torch

    from scintix.cli.__main__ import main as cli
    from scintix.config import load_config
    from scintix.synthesis.sample import sample_gan
    from scintix.synthesis.train_gan import train_gan
    from scintix.synthesis.train_sr import evaluate_sr, train_sr

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    data = WORK / f"sim-thyroid-n{a.n}"  # named by its patient count: another --n never reuses it
    if not (data / "manifest.csv").is_file():
        cli(["simulate", str(data), "--mode", "thyroid", "--n", str(a.n), "--seed", "0"])
    out: dict = {"data": f"SYNTHETIC thyroid scans (scintix simulate --mode thyroid --n {a.n}); numbers say nothing about real scans", "device": device, "runs": {}}
    gen_manifest = None
    if "cross_2_gan" in a.arms:
        base = [f"data.source={data}", "train.progress=false"]
        gan_dir, sr_dir, gen_dir = WORK / "p3-gan", WORK / "p3-sr", WORK / "p3-gan-samples"
        start = time.perf_counter()
        gcfg = load_config("p3-thyroid", [*base, "data.image_size=[32,32]", f"gan.epochs={a.gan_epochs}", "gan.batch_size=32"])
        scfg = load_config("p3-thyroid", [*base, "sr.scale=2", f"sr.epochs={a.sr_epochs}"])
        clear_if_other(gan_dir, gcfg, gen_dir)  # other settings than this call's: trained again, not reused
        clear_if_other(sr_dir, scfg, gen_dir)
        if not (gan_dir / "checkpoints" / "last.pt").is_file():
            train_gan(gcfg, gan_dir)
        if not (sr_dir / "checkpoints" / "best.pt").is_file():
            train_sr(scfg, sr_dir)
        out["sr_test"] = evaluate_sr(sr_dir)
        n_train = sum(1 for line in open(gan_dir / "split.csv") if ",train," in line)
        per = max(1, int(round(a.ratio * n_train / 4)))
        clear_stale_samples(gen_dir, gan_dir, sr_dir, rows=4 * per)
        if not (gen_dir / "manifest.csv").is_file():
            sample_gan(gan_dir, gen_dir, {c: per for c in ("normal", "diffuse", "hot_nodule", "cold_nodule")}, seed=0, sr_run=sr_dir)
        gen_manifest = gen_dir / "manifest.csv"
        out["generation"] = {"gan": str(gan_dir), "sr": str(sr_dir), "gan_epochs": a.gan_epochs, "sr_epochs": a.sr_epochs, "ratio": a.ratio,
                             "wall_seconds_this_call": round(time.perf_counter() - start, 1)}
    arms = {"plain": ["model.name=resnet18", "stages=[]"], "cross_1": ["stages=[]"], "cross_2": [],
            "cross_2_gan": [f"data.generated=[{gen_manifest}]", f"data.generated_ratio={a.ratio}"]}
    for seed in a.seeds:
        for arm in a.arms:
            gen = f"-gan{a.gan_epochs}-sr{a.sr_epochs}-r{a.ratio:g}" if arm == "cross_2_gan" else ""  # its training set holds those images
            res = _run(data, f"p3-{arm}-s{seed}{gen}", [*arms[arm], f"train.seed={seed}"])
            out["runs"][f"{arm}-s{seed}"] = res
            print(arm, seed, "macro AUC", round(res["macro_roc_auc"], 4), "sample-based F1", round(res["sample_based"]["f1"]["value"], 4), flush=True)
            write_progress("p3_thyroid", out)  # the results file is written once, complete
    out["summary"] = {arm: {k: [float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0]
                            for k, v in {"macro_roc_auc": [out["runs"][f"{arm}-s{s}"]["macro_roc_auc"] for s in a.seeds],
                                         "sample_accuracy": [out["runs"][f"{arm}-s{s}"]["sample_based"]["accuracy"]["value"] for s in a.seeds],
                                         "sample_f1": [out["runs"][f"{arm}-s{s}"]["sample_based"]["f1"]["value"] for s in a.seeds]}.items()}
                      for arm in a.arms}
    pairs = [("cross_1", "plain"), ("cross_2", "cross_1"), ("cross_2", "plain"), ("cross_2_gan", "cross_2")]
    classes = list(out["runs"][f"{a.arms[0]}-s{a.seeds[0]}"]["per_class_roc_auc"])
    out["differences"] = {f"{x}_minus_{y}": arm_difference([Path(out["runs"][f"{x}-s{s}"]["run_dir"]) for s in a.seeds],
                                                           [Path(out["runs"][f"{y}-s{s}"]["run_dir"]) for s in a.seeds], classes)
                          for x, y in pairs if x in a.arms and y in a.arms}
    write_result("p3_thyroid", out)


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
