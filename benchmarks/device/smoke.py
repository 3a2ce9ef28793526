"""The CUDA path, checked on a lent GPU in a few minutes, and the timings that size the long jobs there.

Every check runs the public command line in this process on tiny SYNTHETIC data (and one epoch of BS-80K when its crops
travelled in ``.devkit/data``): bf16 and fp16 autocast, resume, evaluate, predict, determinism, segmentation, the
report-guided segmenter, the GAN and the SR loops. A failing check is one line in the JSON, the others still run.
Writes ``device_smoke.json`` (and prints it); exit status 1 if any check failed.

    python benchmarks/device/smoke.py --out $OUT            # on the GPU machine (benchmarks/device/run.sh calls it)
    python benchmarks/device/smoke.py --out /tmp/s --device cpu --quick   # here: the script itself, on the CPU
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import platform
import shutil
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402
import yaml  # noqa: E402

from scintix.cli.__main__ import main  # noqa: E402

FAST = ["-o", "train.tensorboard=false", "-o", "train.progress=false", "-o", "eval.n_bootstrap=50", "-o", "eval.figures=false"]


def _cli(*args) -> str:
    """One command in this process; its output (returned) and a one-line error when it does not exit 0."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    if code != 0:
        raise RuntimeError(f"scintix {' '.join(map(str, args[:2]))} exited {code}: {(err.getvalue() or out.getvalue()).strip().splitlines()[-1:]}")
    return out.getvalue()


def _metrics(run: Path, split: str = "test") -> dict:
    return json.loads((run / "eval" / split / "metrics.json").read_text())


def _auc(run: Path) -> float:
    m = _metrics(run)
    return next(iter(m["per_class"].values()))["roc_auc"]["value"]


def _history(run: Path) -> list[dict]:
    return list(csv.DictReader(open(run / "history.csv")))


def _finite_history(run: Path) -> None:
    for row in _history(run):
        for key in ("train_loss", "val_loss"):
            if not math.isfinite(float(row[key])):
                raise FloatingPointError(f"{run.name}: {key} {row[key]} at epoch {row['epoch']}")


def check_classification(work: Path, dev: list[str], precision: str, epochs: int) -> dict:
    run = work / f"quickstart-{precision}"
    _cli("run", "--out", run, "--epochs", epochs, *dev, "-o", f"train.precision={precision}", *FAST)
    _finite_history(run)
    meta = json.loads((run / "meta.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["train"]["epochs"] = epochs + 1  # one more epoch, by --resume
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    _cli("run", "--resume", "--out", run)
    epochs_done = [int(r["epoch"]) for r in _history(run)]
    if epochs_done != list(range(1, epochs + 2)):
        raise RuntimeError(f"resume: history epochs {epochs_done}")
    _cli("evaluate", run)
    manifest = work / "quickstart-data" / "manifest.csv"
    _cli("predict", run, manifest, "--out", work / f"pred-{precision}.csv")
    rows = list(csv.DictReader(open(work / f"pred-{precision}.csv")))
    bad = [r for r in rows if r.get("error")]
    if not rows or bad:
        raise RuntimeError(f"predict: {len(rows)} rows, {len(bad)} with an error: {bad[:1]}")
    return {"device": meta["device"], "autocast": meta["autocast_dtype"], "test_auc": _auc(run), "epochs": epochs_done[-1], "predicted_rows": len(rows)}


def check_determinism(work: Path, dev: list[str]) -> dict:
    """Two identical fp32 runs with train.deterministic=true: the same history to the last digit."""
    runs = []
    for k in range(2):
        run = work / f"deterministic-{k}"
        _cli("run", "--out", run, "--epochs", 2, *dev, "-o", "train.precision=fp32", "-o", "train.deterministic=true", *FAST)
        runs.append([(r["train_loss"], r["val_loss"]) for r in _history(run)])
    if runs[0] != runs[1]:
        raise RuntimeError(f"deterministic runs differ: {runs[0]} vs {runs[1]}")
    return {"history": runs[0]}


def check_segmentation(work: Path, dev: list[str], n: int) -> dict:
    sim = work / "sim"
    if not sim.exists():
        _cli("simulate", sim, "--n", n, "--seed", 3, "--prevalence", "metastasis=0.7", "arthritis=0")
    out = {}
    for recipe in ("p4-unet", "p4-text"):
        run = work / recipe
        t = time.perf_counter()
        _cli("run", "--recipe", recipe, "--data", sim, "--out", run, "--epochs", 1, *dev, "-o", "data.image_size=[256,64]", "-o", "train.batch_size=8", *FAST)
        stage = run / "stage2-report-fusion" if (run / "stage2-report-fusion").is_dir() else run
        m = _metrics(stage)
        out[recipe] = {"dice": m["per_class"]["lesion"]["dice"]["value"], "wall_s": round(time.perf_counter() - t, 1)}
    return out


def check_gan_and_sr(work: Path, dev: list[str]) -> dict:
    data = work / "quickstart-data"  # made by main_ first
    out = {}
    t = time.perf_counter()
    _cli("gan", "train", data, "--out", work / "gan", "--epochs", 1, *dev, "-o", "data.image_size=[64,32]", "-o", "gan.base_channels=16")
    out["gan_epoch_s"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    _cli("sr", "train", data, "--out", work / "sr", "--scale", 2, "--epochs", 1, *dev, "-o", "data.image_size=[64,32]")
    out["sr_epoch_s"] = round(time.perf_counter() - t, 1)
    return out


def check_bs80k_epoch(work: Path, dev: list[str], shared: Path) -> dict:
    """One epoch of the p1-thoracic recipe on all BS-80K anterior crops: the unit the long jobs are sized in."""
    root = shared / "bs80k-chest-region"
    if not (root / "labels.csv").is_file():
        return {"skipped": f"{root} not here (run benchmarks/device/pack.sh and carry .devkit)"}
    run = work / "p1-bs80k"
    t = time.perf_counter()
    _cli("run", "--recipe", "p1-thoracic", "--data", root / "labels.csv", "--out", run, "--epochs", 1, *dev, *FAST)
    return {"wall_s_1_epoch_incl_eval": round(time.perf_counter() - t, 1), "history": _history(run)[-1]}


def main_(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--device", default="cuda", help="cuda (the point of it) or cpu (to check this script here)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the script's own check on a CPU")
    ap.add_argument("--work", type=Path, default=Path("/tmp/scintix-device-smoke"))
    ap.add_argument("--only", action="append", help="run only this check (repeatable)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    shared = Path(os.environ.get("SCINTIX_SHARED_DATA", ROOT / ".devkit" / "data"))
    dev = ["-o", f"train.device={args.device}"]
    report: dict = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                    "checks": {}, "synthetic": "every check but bs80k_epoch runs on SYNTHETIC data"}
    if torch.cuda.is_available():
        report.update(gpu=torch.cuda.get_device_name(0), capability=list(torch.cuda.get_device_capability(0)), bf16_supported=torch.cuda.is_bf16_supported())
    elif args.device.startswith("cuda"):
        report["checks"]["cuda"] = {"ok": False, "error": "torch sees no CUDA device"}
    _cli("synthetic", args.work / "quickstart-data", "--patients", 30)  # what `scintix run` without --data would write, kept for predict
    dev_data = dev + ["--data", args.work / "quickstart-data"]
    on_gpu = args.device.startswith("cuda")
    checks = {  # a CPU has no fp16 autocast, and bf16 is 10-20x slower than fp32 on CPUs without native bf16
        **({"bf16": lambda: check_classification(args.work, dev_data, "bf16", 2), "fp16": lambda: check_classification(args.work, dev_data, "fp16", 1)} if on_gpu
           else {"fp32": lambda: check_classification(args.work, dev_data, "fp32", 1)}),
        "determinism": lambda: check_determinism(args.work, dev_data),
        "segmentation": lambda: check_segmentation(args.work, dev, 8 if args.quick else 40),
        "gan_and_sr": lambda: check_gan_and_sr(args.work, dev),
    }
    if not args.quick:
        checks["bs80k_epoch"] = lambda: check_bs80k_epoch(args.work, dev, shared)
    for name, fn in checks.items():
        if args.only and name not in args.only:
            continue
        t = time.perf_counter()
        try:
            result = {"ok": True, **fn()}
        except Exception as e:  # one line per failed check; the others still run
            result = {"ok": False, "error": f"{type(e).__name__}: {e}"[:500], "where": traceback.format_exc().strip().splitlines()[-3:]}
        result["wall_s"] = round(time.perf_counter() - t, 1)
        report["checks"][name] = result
        print(f"{name:14s} {'ok' if result['ok'] else 'FAILED: ' + result['error']} ({result['wall_s']} s)", flush=True)
        (args.out / "device_smoke.json").write_text(json.dumps(report, indent=2, default=str))
    failed = [k for k, v in report["checks"].items() if not v["ok"]]
    print(json.dumps(report, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main_())
