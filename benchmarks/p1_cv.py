"""P1 recipes compared by 5-fold patient-grouped cross-validation over all of BS-80K (anterior crops).

    python benchmarks/p1_cv.py [--only NAME ...] [--p1-table] [--folds 5] [--epochs N] [--against NAME] [--train-seeds 0 1 2] [--fuse ANT POST] [--ensemble A B ...]

Each variant is ``p1-thoracic`` plus overrides (below), cross-validated with
``scintix cv``'s protocol (fold = out-of-fold test; checkpoint, threshold and
temperature chosen on a grouped 15 % of the other folds' patients). Writes
benchmarks/results/p1_cv.json: per-fold AUC, mean +- sd, pooled out-of-fold
AUC with a patient-level CI, and each variant's paired difference from
``baseline`` (the former recipe, balanced batches; or ``--against NAME``) on the same folds, from that variant's
fold runs in benchmarks/work or, once they are gone, from its kept out-of-fold file. Fold runs resume; a variant whose fold runs are gone but whose out-of-fold file and JSON row are kept is not retrained.

Each finished variant's out-of-fold probabilities are kept in
benchmarks/results/p1_cv_oof/NAME.csv (fold, a hash of the image's path
relative to the data folder, probability: no file names, patients or labels),
so a later session can pair a new variant with it without rerunning it; two kept files pair alone
(contrasts, ensembles): their folds, labels and patients are rebuilt from the data
(``scintix.training.cv_truth``, ~100 s here, nothing trained). A
pairing across machines is still paired, but carries their numeric
differences too (bf16 autocast on one CPU, fp32 on another): see each
variant's ``device``.

--train-seeds 0 1 2: each variant also at train.seed 1 and 2 on the same folds (NAME-seed1, ...): one CV
is one draw of the training (the same recipe's pooled AUC moved by 0.008 with fp32 vs bf16 arithmetic
alone), so a variant's difference from --against is then also given over seeds
(``minus_AGAINST_over_seeds``: mean pooled AUCs, CI resampling patients and seeds). A variant's run at
seed S also records ``minus_seed0``: its pooled AUC paired with its own seed-0 run, what changing the
training seed alone moves (``--only loss_weighted --train-seeds 1`` measures the recipe's).

--ensemble A B ...: no training; the mean out-of-fold probability of finished CVs (the seeds of one
recipe, or several recipes), its pooled AUC and its paired difference from --against (``ensembles``).

--p1-table (issue 14, item 4): P1's comparison, VGG-16 / ResNet-18 / DenseNet-121 x normalised / raw x
without / with P1's offline augmented dataset, in P1's metrics (accuracy, precision, recall, specificity, F1,
AUC; pooled out of fold, patient-level CIs). Twelve cross-validations: a GPU job.

--fuse ANT POST (issue 14, item 3: P1's task is per patient): late fusion of
two variants' out-of-fold probabilities (an anterior and a posterior one), per
patient the mean of the two views against "abnormal in either view", beside
each view alone on the same patients, with paired CIs (``fused_views``); from
their fold runs or, once those are gone, their kept out-of-fold files (each
view's folds, labels and patients rebuilt from the data).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from _common import (
    RESULTS,
    SHARED,
    WORK,
    invocation,
    reexec_with_allocator_tuning,
    require,
    write_result,
)

VARIANTS = {
    "baseline": ["train.class_balance=sampler"],  # p1-thoracic as the README ran it until 2026-12-01: balanced batches (loss_weighted beat it, so the recipe now uses loss weights)
    "stride1_stem": ["model.small_input=true", "train.class_balance=sampler"],  # the hot spots are a few pixels: no early down-sampling at all (3x3 stride-1 stem, no max-pool; ~16x the compute)
    "stem_stride1_loss": ["model.stem=stride1", "train.class_balance=loss"],  # MONAI's default 7x7 stride-1 stem + max-pool (the independent plain baseline's; 10x4 final map, ~4x), loss weights
    "stem_stride1_loss_e15": ["model.stem=stride1", "train.class_balance=loss", "train.epochs=15"],  # as above at the independent plain baseline's 15 epochs (~2.5x the baseline's compute)
    "loss_weighted": ["train.class_balance=loss"],  # inverse-frequency loss weights instead of balanced batches (the recipe since 2026-12-01: this is p1-thoracic as the README runs it)
    "loss_weighted_post": ["train.class_balance=loss", "data.view_filter=post"],  # the posterior crops, for --fuse loss_weighted loss_weighted_post
    "loss_weighted_ema": ["train.class_balance=loss", "train.ema=0.995"],  # weight average over ~200 steps (~4 epochs): steadier validation scores, so less noisy selection on ~16 inner-val positives?
    "loss_weighted_onecycle": ["train.class_balance=loss", "train.scheduler=onecycle"],  # one-cycle instead of warm-up + cosine
    "loss_weighted_focal": ["train.class_balance=loss", "train.focal_gamma=2"],  # focal loss (gamma 2) with the same weights
    "loss_weighted_last": ["train.class_balance=loss", "train.select_metric=last"],  # no checkpoint selection (the final of 24 epochs): choosing by AUC on ~16 inner-val positives is noisy; the independent plain baseline selected nothing
    "loss_weighted_valloss": ["train.class_balance=loss", "train.select_metric=loss"],  # the epoch with the lowest inner-val loss (all ~400 inner-val images count, not only the ~16 positives' ranks)
    "loss_weighted_intensity": ["train.class_balance=loss", "augment.noise=0.05", "augment.blur=0.75", "augment.contrast=0.25", "augment.gamma=0.5", "augment.intensity_prob=0.3"],  # nnU-Net's intensity perturbations (count noise, blur, contrast, gamma): patients and cameras differ in all four
    "loss_weighted_both_views": ["train.class_balance=loss", "data.train_extra_views=[post]"],  # anterior model also trained on the posterior crops (their own labels): 2x images, 243 vs 136 positive crops; tested on anterior only
}

# Variants that are another variant's fold models evaluated again (crossval.reevaluate_cv: no training, each fold's threshold and
# temperature chosen again on its inner validation split), paired with that variant as well as with --against.
REEVALUATED = {"loss_weighted_intensity_tta": ("loss_weighted_intensity", ["eval.tta=[identity,shift]"])}  # test-time augmentation: the mean over 2-px shifts
VARIANTS.update({name: [*VARIANTS[src], *over] for name, (src, over) in REEVALUATED.items()})

# Variants that differ from a reference only in checkpoint selection continue the reference's fold runs where each stopped
# (crossval.continue_without_selection: the same trajectories, tested equal to training from scratch) when they are in WORK.
CONTINUES = {"loss_weighted_last": "loss_weighted"}

# Issue 14, item 4: P1's own arms (model x normalised/raw x without/with its offline "augmented dataset"), the recipe otherwise.
# "without": no augmentation at all; "augds": 4 fixed geometric copies of every training image (augment.offline_copies), no online
# augmentation, 6 epochs (5x the images per epoch: ~30 epochs' worth, near the 24 of the others). VGG-16 needs a GPU (~5 h an arm on 2 CPU cores); ResNet-18's and DenseNet-121's arms ran on the CPU.
P1_TABLE = {
    f"p1_{model}_{norm}_{aug}": [f"model.name={model}", f"data.normalize={'percentile' if norm == 'norm' else 'none'}", "augment.enabled=false",
                                 *(["augment.offline_copies=4", "train.epochs=6"] if aug == "augds" else [])]
    for model in ("vgg16", "resnet18", "densenet121") for norm in ("norm", "raw") for aug in ("noaug", "augds")
}
VARIANTS.update(P1_TABLE)
# P1's factors as paired differences (pooled out-of-fold AUC, same folds): raw - normalised, with - without the augmented dataset, model - ResNet-18
P1_CONTRASTS = [(f"{model}: raw - normalised, {'with' if aug == 'augds' else 'without'} the augmented dataset", f"p1_{model}_raw_{aug}", f"p1_{model}_norm_{aug}")
                for model in ("vgg16", "resnet18", "densenet121") for aug in ("augds", "noaug")] + \
               [(f"{model}: with - without the augmented dataset, {'raw' if norm == 'raw' else 'normalised'}", f"p1_{model}_{norm}_augds", f"p1_{model}_{norm}_noaug")
                for model in ("vgg16", "resnet18", "densenet121") for norm in ("raw", "norm")] + \
               [(f"{model} - resnet18, {'raw' if norm == 'raw' else 'normalised'}, {'with' if aug == 'augds' else 'without'} the augmented dataset",
                 f"p1_{model}_{norm}_{aug}", f"p1_resnet18_{norm}_{aug}")  # P1's third factor, the model family, against ResNet-18 in the same arm
                for model in ("vgg16", "densenet121") for norm in ("raw", "norm") for aug in ("augds", "noaug")]
TOP_LEVEL = ("fused_views", "p1_contrasts", "ensembles")  # entries of the results file beside "variants"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", action="append", choices=sorted(VARIANTS))
    ap.add_argument("--p1-table", action="store_true", help="P1's arms (p1_*: VGG-16 / ResNet-18 / DenseNet-121, normalised vs raw, with vs without the augmented dataset); a GPU job")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--fuse", nargs=2, metavar=("ANT", "POST"), choices=sorted(VARIANTS), help="fuse these two variants' views per patient (their fold runs in benchmarks/work, or their kept out-of-fold files)")
    ap.add_argument("--ensemble", nargs="+", metavar="RUN", help="train nothing: the mean out-of-fold probability of these finished CVs (variant names, NAME-seedS for "
                    "other training seeds; fold runs or kept out-of-fold files), its pooled AUC and its paired difference from --against (key 'ensembles')")
    ap.add_argument("--against", choices=sorted(VARIANTS), default="baseline", help="the variant paired differences are taken from")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0], metavar="S",
                    help="train each variant with these train.seed values on the same folds (0: the runs and files without a suffix, NAME-seedS for the others); "
                         "with several, also the difference from --against over seeds (a CI over patients and seeds)")
    a = ap.parse_args()
    import torch

    from scintix.config import load_config
    from scintix.training.crossval import (
        compare_cv,
        continue_without_selection,
        cross_validate,
        export_oof,
        fuse_views,
        reevaluate_cv,
        seed_ensemble_auc,
    )
    from scintix.training.cv_truth import cv_truth

    data = require(SHARED / "bs80k-chest-region" / "labels.csv")
    previous = RESULTS / "p1_cv.json"
    oof_dir = RESULTS / "p1_cv_oof"
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"

    def finished(name: str | None) -> bool:  # that variant's fold runs are still here, summarised
        return name is not None and (WORK / f"p1-cv-{name}" / "cv_summary.json").is_file()

    def save(key: str, value: dict) -> None:  # re-read first: another process may have written other variants meanwhile
        old = json.loads(previous.read_text()) if previous.is_file() else {}
        # the file's device is the one its variants trained on: a call that only pairs or combines kept results leaves it
        payload = {"device": old.get("device", device) if key in TOP_LEVEL else device, "variants": old.get("variants", {}), **{k: old[k] for k in TOP_LEVEL if k in old}}
        if key in TOP_LEVEL:
            payload[key] = value
        else:
            payload["variants"][key] = value
        write_result("p1_cv", payload)

    names = (a.only or []) + (list(P1_TABLE) if a.p1_table else [])
    if not names and not a.fuse and not a.ensemble:  # --fuse or --ensemble alone: finished variants combined, nothing trained
        names = [v for v in VARIANTS if v not in P1_TABLE]
    def key(name: str, seed: int) -> str:  # a variant at one training seed: its fold runs, out-of-fold file and JSON entry
        return name if seed == 0 else f"{name}-seed{seed}"

    def locate(k: str):  # a run's fold runs if still here, else its kept out-of-fold file, else None
        return WORK / f"p1-cv-{k}" if finished(k) else oof_dir / f"{k}.csv" if (oof_dir / f"{k}.csv").is_file() else None

    def source(name: str, seed: int):  # a variant at one training seed, located
        return locate(key(name, seed))

    truths: dict[tuple, dict] = {}

    def truth(name: str, *sources):  # kept files alone: their folds, labels and patients rebuilt from the data (None beside a fold-run folder)
        if any(Path(x).is_dir() for x in sources):
            return None
        data_overrides = tuple(o for o in VARIANTS[name.split("-seed")[0]] if o.startswith("data."))  # what decides which images are out of fold
        if data_overrides not in truths:
            truths[data_overrides] = cv_truth(load_config("p1-thoracic", [f"data.source={data}", *data_overrides]), a.folds, 0.15)
        return truths[data_overrides]

    for name in names:
        for seed in a.train_seeds:
            k = key(name, seed)
            kept = json.loads(previous.read_text()).get("variants", {}) if previous.is_file() else {}
            if not (WORK / f"p1-cv-{k}").exists() and (oof_dir / f"{k}.csv").is_file() and k in kept:
                print(k, "done earlier (its out-of-fold file and JSON row are kept): not retrained; delete the file to rerun it", flush=True)
                continue
            overrides = [f"data.source={data}", "train.progress=false", "train.tensorboard=false", *VARIANTS[name], *([f"train.epochs={a.epochs}"] if a.epochs else []),
                         *([f"train.seed={seed}"] if seed else [])]
            start = time.perf_counter()
            if name in REEVALUATED:  # the fold models of another variant, evaluated again: no training
                src = key(REEVALUATED[name][0], seed)
                if not finished(src):
                    print(k, f"skipped: it re-evaluates {src}'s fold models, which are not in {WORK}", flush=True)
                    continue
                summary, continued = reevaluate_cv(WORK / f"p1-cv-{src}", WORK / f"p1-cv-{k}", REEVALUATED[name][1]), []
            else:
                ref = key(CONTINUES[name], seed) if name in CONTINUES else None
                continued = continue_without_selection(WORK / f"p1-cv-{ref}", WORK / f"p1-cv-{k}") if finished(ref) else []
                summary = cross_validate(load_config("p1-thoracic", overrides), WORK / f"p1-cv-{k}", a.folds, 0.15,
                                         own_settings=name not in CONTINUES)  # continued folds resume with their saved config
            s = {**invocation(), "overrides": overrides, "folds": a.folds, "device": device, "wall_seconds_this_call": round(time.perf_counter() - start, 1), **summary}
            if continued:
                s["continued_from"] = f"{ref}'s fold runs {continued}, each from where it stopped (wall time: the remaining epochs and evaluation only)"
            if name in REEVALUATED:
                s[f"minus_{REEVALUATED[name][0]}"] = compare_cv(WORK / f"p1-cv-{k}", WORK / f"p1-cv-{src}")
            export_oof(WORK / f"p1-cv-{k}", oof_dir / f"{k}.csv")
            if seed and source(name, 0) is not None:  # the same recipe at seed 0, same folds: what changing the seed alone moves
                s["minus_seed0"] = compare_cv(WORK / f"p1-cv-{k}", source(name, 0))
            reference = source(a.against, seed)
            if name != a.against and reference is not None:
                s[f"minus_{a.against}"] = compare_cv(WORK / f"p1-cv-{k}", reference)
            save(k, s)
            print(k, "pooled OOF AUC", round(s["pooled_oof_auc"]["value"], 4), [round(s["pooled_oof_auc"]["ci_low"], 4), round(s["pooled_oof_auc"]["ci_high"], 4)],
                  "folds", round(s["fold_auc_mean"], 4), "+-", round(s["fold_auc_sd"], 4), flush=True)
        both = [seed for seed in a.train_seeds if source(name, seed) is not None and source(a.against, seed) is not None]
        if len(both) > 1 and name != a.against:  # the comparison that holds training noise (scintix cv --compare A1,A2,... B1,B2,...)
            mine, theirs = [source(name, seed) for seed in both], [source(a.against, seed) for seed in both]  # paired by seed
            first = key(name, a.train_seeds[0])  # the comparison over seeds is kept with the variant's first seed
            s = json.loads(previous.read_text())["variants"][first]
            s[f"minus_{a.against}_over_seeds"] = {"seeds": both, **compare_cv(mine, theirs, truth=truth(name, *mine, *theirs))}
            s["seed_ensemble_pooled_oof_auc"] = seed_ensemble_auc(mine, truth=truth(name, *mine))  # the seeds' mean probability: still out of fold
            save(first, s)
            d = s[f"minus_{a.against}_over_seeds"]["pooled_auc_difference"]
            print(name, f"- {a.against} over seeds", round(d["value"], 4), [round(d["ci_low"], 4), round(d["ci_high"], 4)], "per seed", d["runs_auc_a"], "vs", d["runs_auc_b"], flush=True)
    if any(n in P1_TABLE for n in names):  # P1's factors, each a paired difference on the same folds where both arms are done
        contrasts = {}
        for label, x, y in P1_CONTRASTS:
            sx, sy = source(x, 0), source(y, 0)
            if sx is None or sy is None:
                continue
            contrasts[label] = {**compare_cv(sx, sy, truth=truth(x, sx, sy)), "arm_a": x, "arm_b": y, **invocation()}
            dd = contrasts[label]["pooled_auc_difference"]
            print(label, round(dd["value"], 4), [round(dd["ci_low"], 4), round(dd["ci_high"], 4)], flush=True)
        if contrasts:
            old = json.loads(previous.read_text()).get("p1_contrasts", {}) if previous.is_file() else {}
            save("p1_contrasts", {**old, **contrasts})
    if a.ensemble:  # several CVs' fold models averaged per image: each fold's models never saw it, so the mean stays out of fold
        for k in a.ensemble:
            if locate(k) is None:
                ap.error(f"--ensemble {k}: neither {WORK / f'p1-cv-{k}'} (finished) nor {oof_dir / f'{k}.csv'}")
        reference = source(a.against, 0)
        if reference is None:
            ap.error(f"--against {a.against}: neither its fold runs nor its out-of-fold file are here")
        start = time.perf_counter()
        members = [locate(k) for k in a.ensemble]
        e = {"members": a.ensemble, "against": a.against, **seed_ensemble_auc(members, against=reference, truth=truth(a.ensemble[0], *members, reference)), **invocation(),
             "wall_seconds_this_call": round(time.perf_counter() - start, 1)}
        old = json.loads(previous.read_text()).get("ensembles", {}) if previous.is_file() else {}
        save("ensembles", {**old, "+".join(a.ensemble): e})
        dd = e["minus_against"]
        print("ensemble of", ", ".join(a.ensemble), "pooled OOF AUC", round(e["value"], 4), [round(e["ci_low"], 4), round(e["ci_high"], 4)],
              f"- {a.against}", round(dd["value"], 4), [round(dd["ci_low"], 4), round(dd["ci_high"], 4)], flush=True)
    if a.fuse:
        ant, post = a.fuse
        sa, sb = locate(ant), locate(post)
        if sa is None or sb is None:
            ap.error(f"--fuse {ant} {post}: each needs its finished fold runs in {WORK} or its out-of-fold file in {oof_dir}")
        fused = {"ant": ant, "post": post, **fuse_views(sa, sb, truth_a=truth(ant, sa), truth_b=truth(post, sb)), **invocation()}
        save("fused_views", fused)
        print("fused", ant, "+", post, "AUC", round(fused["fused_auc"]["value"], 4), "ant alone", round(fused["a_auc"]["value"], 4),
              "post alone", round(fused["b_auc"]["value"], 4), flush=True)


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
