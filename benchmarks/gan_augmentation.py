"""Does GAN augmentation help? BS-80K anterior chest crops (real): real only vs real + generated abnormal images.

    python benchmarks/gan_augmentation.py [--seeds 0 1 2] [--ratios 0.05 0.1] [--epochs 12] [--gan-epochs 40]

1. A class-conditional DCGAN (``scintix gan train``) on the *training* patients
   of ``p1-thoracic``'s split (split seed 0, anterior crops, 160x64).
2. ``scintix gan sample``: abnormal crops only (the rare class, ~6 %).
3. The same classifier recipe (``p1-thoracic``, ``--epochs``) per seed: real
   only, and real + generated at each ratio (``data.generated_ratio``:
   generated images per real training image). Validation and test are real,
   the same patients in every arm (the GAN run's ``split.csv``).
4. Per seed and over seeds: test ROC-AUC and sensitivity at the val-chosen
   threshold, the paired AUC difference (real + GAN - real only) with a
   patient-level CI; FID/KID of the generated abnormal crops (features of the
   seed-0 real-only classifier) and the memorisation check.
Writes benchmarks/results/gan_augmentation.json. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import time

import numpy as np
from _common import (
    RESULTS,
    SHARED,
    WORK,
    arm_difference,
    clear_if_other,
    clear_stale_samples,
    reexec_with_allocator_tuning,
    require,
    train_or_reuse,
    write_progress,
    write_result,
)


def _test_predictions(run_dir):
    rows = list(csv.DictReader(open(run_dir / "eval" / "test" / "predictions.csv")))
    return {r["path"]: (float(r["target"] == "abnormal"), float(r["prob_abnormal"]), r["patient_id"]) for r in rows}


def _classifier(data, name: str, extra: list[str]) -> dict:
    from scintix.config import load_config

    cfg = load_config("p1-thoracic", [f"data.source={data}", "train.progress=false", "train.tensorboard=false", *extra])
    run_dir = WORK / name
    wall = train_or_reuse(cfg, run_dir)
    m = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())["per_class"]["abnormal"]
    summary = json.loads((run_dir / "data_summary.json").read_text())
    return {"run_dir": str(run_dir), "roc_auc": m["roc_auc"], "recall": m["recall"], "specificity": m["specificity"],
            "generated": summary.get("generated"), "train_samples": summary["splits"]["train"]["samples"], "wall_seconds": wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.05, 0.1])
    ap.add_argument("--epochs", type=int, default=12, help="classifier epochs (the recipe's 24 halved: CPU budget)")
    ap.add_argument("--gan-epochs", type=int, default=40)
    ap.add_argument("--gan-base", type=int, default=16, help="gan.base_channels (32 costs ~3 s per step at 160x64 on 2 CPU cores, 16 ~1 s)")
    ap.add_argument("--n-generated", type=int, default=400, help="abnormal crops sampled (the ratios take subsets)")
    ap.add_argument("--gan-set", action="append", default=[], metavar="KEY=VALUE", help="more GAN settings, e.g. gan.ada_target=0.6 (recorded in the JSON)")
    a = ap.parse_args()
    import torch

    from scintix.config import load_config
    from scintix.evaluation.bootstrap import paired_auc_difference
    from scintix.synthesis.quality import quality_report
    from scintix.synthesis.sample import sample_gan
    from scintix.synthesis.train_gan import train_gan

    data = require(SHARED / "bs80k-chest-region")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    gan_dir, gen_dir = WORK / "gan-bs80k", WORK / "gan-bs80k-samples"
    gcfg = load_config("p1-thoracic", [f"data.source={data}", "train.progress=false", f"gan.epochs={a.gan_epochs}", f"gan.base_channels={a.gan_base}", *a.gan_set])
    start = time.perf_counter()
    clear_if_other(gan_dir, gcfg, gen_dir, resumable=("gan.epochs",))  # another --gan-base or --gan-set: not this GAN
    if not (gan_dir / "checkpoints" / "last.pt").is_file():
        shutil.rmtree(gan_dir, ignore_errors=True)
        train_gan(gcfg, gan_dir)
    elif json.loads((gan_dir / "meta.json").read_text()) and torch.load(gan_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] < a.gan_epochs:
        train_gan(None, gan_dir, resume=True, max_epochs=a.gan_epochs)  # --gan-epochs lowered on a rerun: stop there
    gan_wall = round(time.perf_counter() - start, 1)
    gan_hist = list(csv.DictReader(open(gan_dir / "history.csv")))
    gan_total = float(gan_hist[-1]["elapsed_s"]) if gan_hist else None  # all its epochs, resumed calls included
    clear_stale_samples(gen_dir, gan_dir, rows=a.n_generated)
    if not (gen_dir / "manifest.csv").is_file():
        sample_gan(gan_dir, gen_dir, {"abnormal": a.n_generated}, seed=0)
    split = ["data.split.file=" + str(gan_dir / "split.csv")]
    arms = {"real_only": []} | {f"gan_{r:g}": [f"data.generated=[{gen_dir / 'manifest.csv'}]", f"data.generated_ratio={r}"] for r in a.ratios}
    runs: dict = {}
    out = {"data": "BS-80K right-chest anterior crops (real); validation and test real, same patients in every arm", "device": device,
           "classifier": f"p1-thoracic, {a.epochs} epochs", "gan": {"run": str(gan_dir), "epochs": a.gan_epochs, "base_channels": gcfg.gan.base_channels, "settings": a.gan_set,
                                                                  "wall_seconds_this_call": gan_wall, "training_seconds": gan_total,
                                                                  "epochs_trained": len(gan_hist), "generated_abnormal": a.n_generated},
           "seeds": a.seeds, "runs": runs}
    for seed in a.seeds:
        for arm, extra in arms.items():
            res = _classifier(data, f"gan-aug-{arm}-s{seed}", [*split, *extra, f"train.epochs={a.epochs}", f"train.seed={seed}"])
            runs[f"{arm}-s{seed}"] = res
            print(arm, seed, "AUC", round(res["roc_auc"]["value"], 4), "sens", round(res["recall"]["value"], 3), flush=True)
        write_progress("gan_augmentation", out)  # the results file is written once, complete
    if "quality" not in out:
        q = quality_report(gan_dir, gen_dir, WORK / f"gan-aug-real_only-s{a.seeds[0]}")
        out["quality"] = {k: q[k] for k in ("feature_extractor", "per_class", "nearest")}
    base = {s: _test_predictions(WORK / f"gan-aug-real_only-s{s}") for s in a.seeds}
    out["differences"] = {}
    for arm in arms:
        if arm == "real_only":
            continue
        per_seed = {}
        for s in a.seeds:
            other = _test_predictions(WORK / f"gan-aug-{arm}-s{s}")
            keys = sorted(set(base[s]) & set(other))
            y = [base[s][k][0] for k in keys]
            per_seed[s] = paired_auc_difference(y, [other[k][1] for k in keys], [base[s][k][1] for k in keys], [base[s][k][2] for k in keys], 2000, 0.95, s)
        sens = [runs[f"{arm}-s{s}"]["recall"]["value"] - runs[f"real_only-s{s}"]["recall"]["value"] for s in a.seeds]
        helper = arm_difference([WORK / f"gan-aug-{arm}-s{s}" for s in a.seeds], [WORK / f"gan-aug-real_only-s{s}" for s in a.seeds], ["abnormal"])["abnormal"]
        pooled = helper["auc_of_seed_averaged_scores"]
        out["differences"][arm] = {"auc_per_seed": per_seed, "auc_of_seed_averaged_scores": pooled, "sensitivity_difference_per_seed": sens,
                                   "sensitivity_difference_mean_over_seeds": helper["sensitivity_mean_over_seeds"],
                                   "auc_mean_sd": [float(np.mean([runs[f"{arm}-s{s}"]["roc_auc"]["value"] for s in a.seeds])),
                                                   float(np.std([runs[f"{arm}-s{s}"]["roc_auc"]["value"] for s in a.seeds], ddof=1)) if len(a.seeds) > 1 else 0.0]}
        d = pooled
        print(arm, "- real only: AUC", round(d["value"], 4), [round(d["ci_low"], 4), round(d["ci_high"], 4)], flush=True)
    out["real_only_auc_mean_sd"] = [float(np.mean([runs[f"real_only-s{s}"]["roc_auc"]["value"] for s in a.seeds])),
                                    float(np.std([runs[f"real_only-s{s}"]["roc_auc"]["value"] for s in a.seeds], ddof=1)) if len(a.seeds) > 1 else 0.0]
    write_result("gan_augmentation", out)
    print("written", RESULTS / "gan_augmentation.json")


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
