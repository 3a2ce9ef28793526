"""P2's table on SYNTHETIC whole-body scans: dSPIC vs AlexNet vs ResNet-18, geometric augmentation vs geometric + GAN images.

    python benchmarks/p2_wholebody.py [--seeds 0 1 2] [--n 400] [--size 256 64] [--epochs 20] [--gan-epochs 30] [--ratio 0.5]
                                      [--models dspic alexnet:lr=0.0001 ...] [--equal-steps dspic ...]

Data: ``scintix simulate`` (SYNTHETIC, metastasis + arthritis, ANT + POST stacked), split fixed (seed 0).
Arms per model: ``geo`` (the recipe's geometric augmentation) and ``geo_gan`` (+ images of a two-view
conditional DCGAN trained on the same training patients, ``data.generated_ratio`` per real training
patient); with ``--equal-steps MODEL``, also ``geo_steps`` for that model: the geo arm trained for as many
optimiser steps as its geo + GAN arm (epochs x GAN-arm / geo-arm training images), the control that tells "GAN
images" from "more steps". Per run: per-label ROC-AUC and the sample-based accuracy, precision, sensitivity, specificity
and F1 with patient-level CIs (P2 reports its best at accuracy 0.7747, F1 0.7860 on private data). Paired, on the
same test patients: geo + GAN - geo per model (and geo + GAN - geo_steps, geo_steps - geo), and the first model (dSPIC) - each other one in the geo arm.
Writes benchmarks/results/p2_wholebody.json.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _common import (
    WORK,
    arm_difference,
    clear_if_other,
    clear_stale_samples,
    reexec_with_allocator_tuning,
    train_or_reuse,
    with_earlier,
    write_result,
)


def _model_spec(spec: str) -> tuple[str, str, list[str]]:
    """``alexnet`` or ``alexnet:lr=0.0001`` -> (row label, model name, overrides): a model at its own learning rate is its own row."""
    name, _, opt = spec.partition(":")
    if not opt:
        return name, name, []
    key, _, value = opt.partition("=")
    if key != "lr" or not value:
        raise SystemExit(f"--models {spec}: NAME or NAME:lr=VALUE")
    return f"{name}-lr{float(value):g}", name, [f"train.lr={float(value)}"]


def _train_images(run_dir) -> int:
    return json.loads((run_dir / "data_summary.json").read_text())["splits"]["train"]["samples"]


def _run(data, name: str, extra: list[str]) -> dict:
    from scintix.config import load_config

    cfg = load_config("p2-wholebody", [f"data.source={data}", "train.progress=false", "train.tensorboard=false", *extra])
    run_dir = WORK / name
    wall = train_or_reuse(cfg, run_dir)
    m = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    val = json.loads((run_dir / "eval" / "val" / "metrics.json").read_text())  # what a choice between settings may look at
    return {"run_dir": str(run_dir), "per_label_roc_auc": {c: v["roc_auc"] for c, v in m["per_class"].items()}, "sample_based": m["sample_based"],
            "per_label": {c: {k: v[k] for k in ("accuracy", "precision", "recall", "specificity", "f1")} for c, v in m["per_class"].items()},  # at the val threshold
            "val_per_label_roc_auc": {c: v["roc_auc"]["value"] for c, v in val["per_class"].items()},
            "generated": json.loads((run_dir / "data_summary.json").read_text()).get("generated"), "synthetic": m.get("synthetic"), "wall_seconds": wall}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--size", type=int, nargs=2, default=[256, 64])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--gan-epochs", type=int, default=30)
    ap.add_argument("--ratio", type=float, default=0.5)
    ap.add_argument("--gan-base", type=int, default=16, help="gan.base_channels (CPU budget)")
    ap.add_argument("--models", nargs="+", default=["dspic", "alexnet", "resnet18"],
                    help="NAME, or NAME:lr=VALUE for a model at its own learning rate (its own row, e.g. alexnet:lr=0.0001)")
    ap.add_argument("--equal-steps", nargs="*", default=[], metavar="MODEL",
                    help="row labels that also get geo_steps: the geo arm with as many optimiser steps as their geo + GAN arm")
    a = ap.parse_args()
    specs = [_model_spec(m) for m in a.models]
    labels = [label for label, _, _ in specs]
    if set(a.equal_steps) - set(labels):
        raise SystemExit(f"--equal-steps {' '.join(sorted(set(a.equal_steps) - set(labels)))}: not among --models' row labels {labels}")
    import torch

    from scintix.cli.__main__ import main as cli
    from scintix.config import load_config
    from scintix.synthesis.sample import sample_gan
    from scintix.synthesis.train_gan import train_gan

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    # work folders named by what decides their contents, so a rerun at another size or patient count never reuses these
    data = WORK / f"sim-p2-n{a.n}"
    if not (data / "manifest.csv").is_file():
        cli(["simulate", str(data), "--n", str(a.n), "--seed", "0"])
    size = f"data.image_size=[{a.size[0]},{a.size[1]}]"
    tag = f"n{a.n}-{a.size[0]}x{a.size[1]}"
    gan_dir = WORK / f"p2-gan-{tag}-e{a.gan_epochs}-b{a.gan_base}"
    gen_dir = gan_dir.with_name(gan_dir.name + "-samples")
    start = time.perf_counter()
    gcfg = load_config("p2-wholebody", [f"data.source={data}", size, "train.progress=false", f"gan.epochs={a.gan_epochs}", "gan.batch_size=16",
                                        f"gan.base_channels={a.gan_base}"])
    clear_if_other(gan_dir, gcfg, gen_dir)
    if not (gan_dir / "checkpoints" / "last.pt").is_file():
        train_gan(gcfg, gan_dir)
    elif torch.load(gan_dir / "checkpoints" / "last.pt", weights_only=True)["epoch"] < a.gan_epochs:  # interrupted: continue it
        train_gan(None, gan_dir, resume=True)
    per_class = {"metastasis": a.n // 2, "arthritis": a.n // 2, "normal": a.n // 4}
    clear_stale_samples(gen_dir, gan_dir, rows=sum(per_class.values()))
    if not (gen_dir / "manifest.csv").is_file():
        sample_gan(gan_dir, gen_dir, per_class, seed=0)
    out: dict = {"data": f"SYNTHETIC whole-body scans (scintix simulate --n {a.n}), ANT + POST, {a.size[0]}x{a.size[1]}; numbers say nothing about real scans",
                 "device": device, "epochs": a.epochs, "gan": {"epochs": a.gan_epochs, "base_channels": a.gan_base, "ratio": a.ratio, "wall_seconds_this_call": round(time.perf_counter() - start, 1)},
                 "settings": {"n": a.n, "size": a.size, "epochs": a.epochs, "gan_epochs": a.gan_epochs, "gan_base": a.gan_base, "ratio": a.ratio,
                              "models": a.models, "seeds": a.seeds, "equal_steps": a.equal_steps},
                 "runs": {}}
    arms = {"geo": [], "geo_gan": [f"data.generated=[{gen_dir / 'manifest.csv'}]", f"data.generated_ratio={a.ratio}"]}
    for seed in a.seeds:
        for label, model, own in specs:
            common = [size, f"model.name={model}", f"train.seed={seed}", f"data.split.file={gan_dir / 'split.csv'}", *own]

            def run_arm(arm: str, extra: list[str]) -> None:
                res = _run(data, f"p2-{tag}-{label}-{arm}-s{seed}", [*common, *extra])
                out["runs"][f"{label}-{arm}-s{seed}"] = res
                print(label, arm, seed, "sample F1", round(res["sample_based"]["f1"]["value"], 4), "accuracy", round(res["sample_based"]["accuracy"]["value"], 4), flush=True)

            for arm, extra in arms.items():
                run_arm(arm, [f"train.epochs={a.epochs}", *extra])
            if label in a.equal_steps:  # the geo arm with as many optimiser steps as the GAN arm: epochs scaled by its training images
                geo, gan = (_train_images(WORK / f"p2-{tag}-{label}-{x}-s{seed}") for x in ("geo", "geo_gan"))
                epochs = out.setdefault("equal_steps_epochs", {})[f"{label}-s{seed}"] = round(a.epochs * gan / geo)
                run_arm("geo_steps", [f"train.epochs={epochs}"])
            # no partial results file: the finished run folders are the progress (a rerun reuses them); the file is written once, whole
    keys = list(dict.fromkeys(k.rsplit("-s", 1)[0] for k in out["runs"]))  # label-arm, in run order
    out["summary"] = {key: {k: [float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0]
                            for k, v in {m: [out["runs"][f"{key}-s{s}"]["sample_based"][m]["value"] for s in a.seeds]
                                         for m in ("accuracy", "precision", "sensitivity", "specificity", "f1")}.items()}
                      for key in keys}
    classes = list(out["runs"][f"{labels[0]}-geo-s{a.seeds[0]}"]["per_label_roc_auc"])

    def diff(arm: str, base: str) -> dict:  # "label-arm" - "label-arm", paired by seed on the same test patients
        return arm_difference([WORK / f"p2-{tag}-{arm}-s{s}" for s in a.seeds], [WORK / f"p2-{tag}-{base}-s{s}" for s in a.seeds], classes)

    out["geo_gan_minus_geo"] = {m: diff(f"{m}-geo_gan", f"{m}-geo") for m in labels}
    if a.equal_steps:
        out["geo_gan_minus_geo_steps"] = {m: diff(f"{m}-geo_gan", f"{m}-geo_steps") for m in a.equal_steps}
        out["geo_steps_minus_geo"] = {m: diff(f"{m}-geo_steps", f"{m}-geo") for m in a.equal_steps}
    first = labels[0]  # P2's question: does its model beat the others (same images, same seeds, geometric augmentation)
    out["model_differences_geo"] = {f"{first}_minus_{m}": diff(f"{first}-geo", f"{m}-geo") for m in labels[1:]}
    for m, per in out["geo_gan_minus_geo"].items():
        for c, d in per.items():
            auc = d["auc_of_seed_averaged_scores"]
            print(m, c, "geo+GAN - geo: AUC", round(auc["value"], 4), [round(auc["ci_low"], 4), round(auc["ci_high"], 4)], flush=True)
    write_result("p2_wholebody", with_earlier("p2_wholebody", out, keep=("single_run_probes",)))


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
