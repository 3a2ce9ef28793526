"""SRGAN (P3's super-resolution) on real BS-80K anterior chest crops: PSNR/SSIM against bicubic, and a classifier on SR images.

    python benchmarks/sr_bs80k.py [--scales 2 4] [--epochs 10] [--classifier RUN]

High resolution = ``p1-thoracic``'s input (160x64, percentile-normalised); the
low-resolution input is the same crop down-sampled x2 / x4. The SR generator
learns from the classifier's *training* patients only (its ``split.csv``), so
the test patients are new to both. Content loss: L1 + perceptual (MSE of the
classifier's ``forward_features`` maps, weight 0.1) + adversarial (1e-3).
Reported per scale, on the test split: PSNR and SSIM of SR and bicubic with
the paired differences (patient-level CIs), and the classifier's ROC-AUC on
the original, bicubic-restored and SR-restored crops with paired differences.
The classifier: ``--classifier`` (a p1-thoracic run), else
benchmarks/work/gan-aug-real_only-s0 (from gan_augmentation.py) when present,
else one trained here (p1-thoracic, 12 epochs, seed 0).
Writes benchmarks/results/sr_bs80k.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from _common import (
    SHARED,
    WORK,
    invocation,
    reexec_with_allocator_tuning,
    require,
    train_or_reuse,
    write_result,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scales", type=int, nargs="+", default=[2, 4])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--classifier", type=Path, default=None)
    a = ap.parse_args()
    import torch

    from scintix.config import load_config
    from scintix.synthesis.sr_downstream import classifier_on_sr
    from scintix.synthesis.train_sr import evaluate_sr, train_sr

    data = require(SHARED / "bs80k-chest-region")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    cls = a.classifier or WORK / "gan-aug-real_only-s0"
    if not (cls / "eval" / "test" / "metrics.json").is_file():
        cls = WORK / "sr-bs80k-classifier"
        train_or_reuse(load_config("p1-thoracic", [f"data.source={data}", "train.progress=false", "train.tensorboard=false", "train.epochs=12"]), cls)
    import json

    from _common import RESULTS

    previous = RESULTS / "sr_bs80k.json"
    kept = json.loads(previous.read_text()) if previous.is_file() else {}
    scales = {k: {"epochs": kept.get("epochs"), "device": kept.get("device"), "classifier_run": kept.get("classifier"), **v}  # scales not rerun now are kept, with their settings
              for k, v in kept.get("scales", {}).items() if k not in {f"x{s}" for s in a.scales}}
    out: dict = {"data": "BS-80K right-chest anterior crops (real), 160x64; SR learns from the classifier's training patients, evaluated on its test patients",
                 "device": device, "classifier": str(cls), "epochs": a.epochs, "scales": scales}
    for scale in a.scales:
        run = WORK / f"sr-bs80k-x{scale}"
        start = time.perf_counter()
        if not (run / "checkpoints" / "best.pt").is_file():
            cfg = load_config("p1-thoracic", [f"data.source={data}", "train.progress=false", f"data.split.file={cls / 'split.csv'}", f"sr.scale={scale}",
                                              f"sr.epochs={a.epochs}", f"sr.feature_run={cls}", "sr.perceptual_weight=0.1"])
            train_sr(cfg, run)
        wall = round(time.perf_counter() - start, 1)
        quality = evaluate_sr(run)
        downstream = classifier_on_sr(run, cls)
        out["scales"][f"x{scale}"] = {"epochs": a.epochs, "device": device, "classifier_run": str(cls), "run": str(run), "wall_seconds_this_call": wall,
                                      "psnr_ssim": quality, "classifier": downstream, **invocation()}
        d, c = quality["psnr_difference"], downstream["per_class"]["abnormal"]
        print(f"x{scale}: PSNR SR {quality['sr_psnr']:.2f} vs bicubic {quality['bicubic_psnr']:.2f} dB (diff {d['value']:+.2f} [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}]); "
              f"AUC original {c['auc_original']:.4f}, bicubic {c['auc_bicubic']:.4f}, SR {c['auc_sr']:.4f}", flush=True)
        write_result("sr_bs80k", out)


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
