"""Data-parallel (torchrun, gloo, 2 processes) vs one process, same global batch, on this CPU.

    python benchmarks/ddp_equivalence.py [--repeats 3] [--epochs 3]

Data: the default job's SYNTHETIC thoracic crops (simulated whole-body scans,
cropped; made once under benchmarks/work). Model ResNet-18 at 96x96, both
views stacked, global batch 32. Equality needs what differs by design off:
fp32 (a bf16 autocast rounds a half batch differently), no dropout (each rank
draws its own masks), class_balance none (a weighted mean is normalised per
rank). The 2-process run is repeated to check that it never hangs (each has a
timeout). Writes benchmarks/results/ddp_equivalence.json.
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

from _common import WORK, write_result

SAME = ["-o", "train.precision=fp32", "-o", "model.dropout=0", "-o", "train.class_balance=none", "-o", "train.early_stop_patience=0", "-o", "train.progress=false",
        "-o", "train.tensorboard=false", "-o", "eval.n_bootstrap=200", "-o", "train.channels_last=false"]


def _data() -> str:
    manifest = WORK / "demo-data" / "manifest.csv"
    if not manifest.is_file():
        from scintix.simulate.demo import make_thorax_crops

        make_thorax_crops(WORK / "demo-data", n_patients=400, prevalence=0.5, seed=0)
    return str(manifest)


def _run(out, nproc: int, epochs: int, threads: int = 1, extra: tuple = (), timeout: int = 900) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "SCINTIX_NO_REEXEC": "1", "OMP_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "scintix.cli", "run", "--nproc", str(nproc), "--data", _data(), "--out", str(out), "--epochs", str(epochs), *SAME, *extra]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
    wall = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(p.stderr[-2000:])
    hist = list(csv.DictReader(open(out / "history.csv")))
    val = json.loads((out / "eval" / "val" / "metrics.json").read_text())["per_class"]["abnormal"]["roc_auc"]["value"]
    return {"processes": nproc, "threads_per_process": threads, "wall_s": round(wall, 1), "history": [{k: float(v) for k, v in r.items()} for r in hist], "val_roc_auc_final": val}


def _diff(a: dict, b: dict) -> float:
    return max(abs(r1[k] - r2[k]) / max(1.0, abs(r1[k])) for r1, r2 in zip(a["history"], b["history"]) for k in ("train_loss", "val_loss", "val_roc_auc"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    a = ap.parse_args()
    _data()
    # 1. Mechanics: with a learning rate too small to move the weights, an epoch's losses compare the forward passes,
    #    the global-batch BatchNorm, the batch slicing and the gathered evaluation without training's amplification.
    still = ("-o", "train.lr=1e-9")
    mech = [_run(WORK / "ddp-still-1", 1, 1, extra=still), _run(WORK / "ddp-still-2", 2, 1, extra=still)]
    # 2. Training: the real learning rate; the single process with 1 vs 2 threads gives the noise floor
    #    (float32 sums in another order, amplified by training), against which 2 processes are compared.
    one = _run(WORK / "ddp-1", 1, a.epochs)
    one_2t = _run(WORK / "ddp-1-2threads", 1, a.epochs, threads=2)
    twos = [_run(WORK / f"ddp-2-{i}", 2, a.epochs) for i in range(a.repeats)]
    result = {
        "what": "torchrun 2 processes (gloo, 1 thread each) vs 1 process, same global batch 32, ResNet-18 96x96 two-view, SYNTHETIC demo crops (400 simulated patients)",
        "settings": SAME, "epochs": a.epochs,
        "mechanics_lr_1e-9": {"one_process": mech[0], "two_processes": mech[1], "max_relative_difference": _diff(mech[0], mech[1]), "tolerance": 1e-4},
        "training": {
            "one_process": one, "one_process_2_threads": one_2t, "two_processes": twos,
            "noise_floor_1_vs_2_threads": _diff(one, one_2t),
            "two_vs_one_process": [_diff(one, t) for t in twos],
            "two_process_repeats_identical": all(_diff(t, twos[0]) == 0.0 for t in twos),  # losses and AUC, not the timings
        },
        "tolerance_why": "float32 sums in another order: all-reduced gradients and global BatchNorm statistics (sum and sum of squares) vs one reduction",
        "hangs": 0, "repeats": a.repeats,
    }
    write_result("ddp_equivalence", result)
    print(json.dumps({"mechanics": result["mechanics_lr_1e-9"]["max_relative_difference"], **{k: v for k, v in result["training"].items() if not isinstance(v, (dict, list)) or k == "two_vs_one_process"}}, indent=1))
    print("wall s: 1 process", one["wall_s"], "| 2 threads", one_2t["wall_s"], "| 2 processes", [t["wall_s"] for t in twos])


if __name__ == "__main__":
    main()
