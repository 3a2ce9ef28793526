"""Report-guided segmentation vs our U-Net by patient-grouped k-fold cross-validation (nnU-Net's protocol), two-stage.

    python benchmarks/text_segmentation_cv.py [--folds 5] [--sim-patients 200] [--epochs 15] [--size 256 64]
                                              [--benign-foci 0.5] [--lang zh|en] [--view-prefix] [--body-position] [--seeds 0]

Issue 10's comparison with every simulated patient out of fold once instead of a
30-patient test split (per-seed differences there ranged -0.05..+0.03 Dice).
Three CVs on the same folds (split seed 0), each fold's run choosing its
checkpoint and threshold on an inner validation share of the other folds:

1. ``unet``: the ``p4-text`` recipe with ``model.name=unet`` (``--epochs``);
2. ``unet2``: the U-Net continued from stage 1's same fold (``scintix cv --init-from``), ``--epochs`` more;
3. ``text``: ``text_unet`` warm-started from stage 1's same fold (its image path), ``--epochs``.

Primary (declared before any run): text minus unet2, per-scan Dice on the
scans with a lesion, paired, patient-level CI (``scintix cv --compare``);
also unet2 minus unet. Data: ``scintix simulate --n N --seed 0`` (metastases,
with ``--benign-foci P`` benign look-alike foci the report names; metastases
segmented), SYNTHETIC. Writes benchmarks/results/text_segmentation_cv.json
(one entry per setting; earlier entries kept) and each CV's out-of-fold per-scan Dice in
benchmarks/results/text_segmentation_cv_oof/ (``scintix cv --compare`` pairs a later CV with them). CV folders
under benchmarks/work/text-seg-cv-*/ are resumed.
"""

from __future__ import annotations

import argparse
import json
import time

from _common import (
    RESULTS,
    WORK,
    invocation,
    reexec_with_allocator_tuning,
    write_result,
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--sim-patients", type=int, default=200)
    ap.add_argument("--epochs", type=int, default=15, help="per stage")
    ap.add_argument("--size", type=int, nargs=2, default=[256, 64])
    ap.add_argument("--benign-foci", type=float, default=0.0)
    ap.add_argument("--lang", choices=["zh", "en"], default="zh")
    ap.add_argument("--view-prefix", action="store_true", help="text model reads '[ANT] '/'[POST] ' + report")
    ap.add_argument("--body-position", action="store_true", help="text model's position code in the body's frame")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds (one CV per seed and stage; --compare over seeds)")
    a = ap.parse_args()
    import torch

    from scintix.cli.__main__ import main as cli
    from scintix.config import load_config
    from scintix.training.crossval import compare_cv, cross_validate
    from scintix.training.cv_compare import export_oof

    prevalence = ["metastasis=0.6", "arthritis=0", *([f"fracture={a.benign_foci:g}"] if a.benign_foci else [])]
    tag = f"n{a.sim_patients}" + (f"-benign{a.benign_foci:g}" if a.benign_foci else "")
    sim = WORK / f"sim-p4-text-{tag}"
    if not (sim / "manifest.csv").is_file():
        cli(["simulate", str(sim), "--n", str(a.sim_patients), "--seed", "0", "--prevalence", *prevalence])
    common = [f"data.source={sim}", f"data.image_size=[{a.size[0]},{a.size[1]}]", f"train.epochs={a.epochs}", "stages=[]", "train.progress=false",
              "train.tensorboard=false", "eval.figures=false", f"data.report_column={'report_zh' if a.lang == 'zh' else 'report'}",
              *(["data.mask_column=mask_metastasis"] if a.benign_foci else [])]
    text_extra = [f"text.view_prefix={'true' if a.view_prefix else 'false'}", *(["text.position=body"] if a.body_position else [])]
    key = f"p4{a.lang}_{tag}_k{a.folds}_e{a.epochs}" + ("_view" if a.view_prefix else "") + ("_bodypos" if a.body_position else "")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    arms = {"unet": (["model.name=unet", "text.view_prefix=false"], None), "unet2": (["model.name=unet", "text.view_prefix=false"], "unet"),
            "text": (["model.name=text_unet", *text_extra], "unet")}
    dirs: dict[str, list] = {arm: [] for arm in arms}
    entry: dict = {"data": f"SYNTHETIC: scintix simulate --n {a.sim_patients} --seed 0 --prevalence {' '.join(prevalence)}", "folds": a.folds, "epochs_per_stage": a.epochs,
                   "image_size": a.size, "seeds": a.seeds, "device": device, **invocation(), "arms": {}}
    for seed in a.seeds:
        for arm, (over, start) in arms.items():
            out = WORK / f"text-seg-cv-{key}-{arm}-s{seed}"
            t0 = time.perf_counter()
            s = cross_validate(load_config("p4-text", [*common, *over, f"train.seed={seed}"]), out, a.folds, 0.15,
                               init_from=WORK / f"text-seg-cv-{key}-{start}-s{seed}" if start else None)
            dirs[arm].append(out)
            kept_oof = export_oof(out, RESULTS / "text_segmentation_cv_oof" / f"{key}-{arm}-s{seed}.csv")  # SYNTHETIC: pairable later without the folds
            c = s["classes"][0]
            entry["arms"][f"{arm}-s{seed}"] = {"cv": str(out), "oof_dice_file": str(kept_oof.relative_to(RESULTS.parent.parent)), "wall_seconds_this_call": round(time.perf_counter() - t0, 1), "dice": s["per_class"][c]["dice"],
                                               "global_dice": s["per_class"][c]["global_dice"], "fold_dice_mean": s["fold_dice_mean"], "fold_dice_sd": s["fold_dice_sd"],
                                               **({"text_conditions": s["text_conditions"]} if "text_conditions" in s else {})}
            print(key, arm, seed, "pooled Dice", round(s["per_class"][c]["dice"]["value"], 4), flush=True)
    entry["text_minus_unet2"] = compare_cv(dirs["text"], dirs["unet2"])
    entry["unet2_minus_unet"] = compare_cv(dirs["unet2"], dirs["unet"])
    previous = RESULTS / "text_segmentation_cv.json"
    kept = json.loads(previous.read_text()).get("settings", {}) if previous.is_file() else {}
    write_result("text_segmentation_cv", {"settings": {**kept, key: entry}})
    d = next(iter(entry["text_minus_unet2"]["per_class"].values()))["dice_difference"]
    print(key, "text - continued U-Net, per-scan Dice", round(d["value"], 4), [round(d["ci_low"], 4), round(d["ci_high"], 4)], flush=True)


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
