"""PneumoniaMNIST (MedMNIST v2, 28 px, official splits): protocol reproduction and our best recipe.

    python benchmarks/medmnist_pneumonia.py [--protocol-epochs N] [--skip-protocol] [--skip-best]
                                            [--ensemble K --member-epochs E [--tta] [--ensemble-seeds S ...] [--ensemble-intensity]]
                                            [--intensity [--train-seeds 0 1 2]]

Writes benchmarks/results/medmnist_pneumonia.json with test AUC/ACC (+ 95% CIs),
ACC at threshold 0.5 (the paper's) and at the val-chosen threshold, training
time, and the published rows for comparison. The protocol asks for 100 epochs
(about 4 h of ResNet-18 at 28 px on a 2-core CPU); ``--protocol-epochs``
shortens it and the result says so.
``--ensemble K``: K runs of the best recipe (train seeds 0..K-1, E epochs
each, with ``eval.tta=[identity,shift]`` when ``--tta``) averaged as
``scintix ensemble`` averages them (mean calibrated probability); the
ensemble's threshold is chosen on its own validation probabilities. The
training time is the sum over members (they run one after the other).
"""

from __future__ import annotations

import argparse
import shutil
import time

from _common import (
    SHARED,
    WORK,
    invocation,
    reexec_with_allocator_tuning,
    require,
    summarize_run,
    train_or_reuse,
    write_result,
)

PUBLISHED = {
    "ResNet-18 (28)": (0.944, 0.854), "ResNet-18 (224)": (0.956, 0.864), "ResNet-50 (28)": (0.948, 0.854),
    "ResNet-50 (224)": (0.962, 0.884), "auto-sklearn": (0.942, 0.855), "AutoKeras": (0.947, 0.878), "Google AutoML Vision": (0.991, 0.946),
}


def _run(recipe: str, data, name: str, extra: list[str], reuse: bool = False) -> dict:
    """Train (or, with ``reuse``, keep a finished run of the same config in WORK) and summarise one run."""
    from scintix.config import load_config
    from scintix.evaluation.metrics import binary_metrics
    from scintix.training.run import train_run

    cfg = load_config(recipe, [f"data.source={data}", "train.progress=false", *extra])
    run_dir = WORK / name
    if reuse:
        wall = train_or_reuse(cfg, run_dir)
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        train_run(cfg, run_dir)
        wall = time.perf_counter() - start
    s = summarize_run(run_dir)
    # ACC at 0.5, as the paper reports it, next to ACC at the val-chosen threshold.
    import csv

    import numpy as np

    rows = list(csv.DictReader(open(run_dir / "eval" / "test" / "predictions.csv")))
    y = np.array([r["target"] == "pneumonia" for r in rows], int)
    p = np.array([float(r["prob_pneumonia"]) for r in rows])
    at_half = binary_metrics(y, p, 0.5)
    test = s["test"]["per_class"]["pneumonia"]
    return {
        "recipe": recipe, "overrides": extra, "wall_seconds_total": round(wall, 1), "epochs_run": len(s["history"]),
        "test_auc": test["roc_auc"], "test_acc_at_val_threshold": test["accuracy"], "val_threshold": s["test"]["thresholds"]["pneumonia"],
        "test_acc_at_0.5": at_half["accuracy"], "test_auc_check": at_half["roc_auc"], "details": s,
    }


def _predictions(run_dir, split: str):
    import csv

    import numpy as np

    rows = list(csv.DictReader(open(run_dir / "eval" / split / "predictions.csv")))
    return np.array([r["target"] == "pneumonia" for r in rows], int), np.array([float(r["prob_pneumonia"]) for r in rows]), [r["path"] for r in rows], [r["patient_id"] for r in rows]


def _ensemble(data, k: int, epochs: int, tta: bool, seeds: list[int] | None = None, intensity: bool = False) -> dict:
    """K seeds of the best recipe (``intensity``: with nnU-Net's intensity augmentation), their calibrated probabilities
    averaged (scintix ensemble's rule)."""
    import numpy as np

    from scintix.evaluation.bootstrap import bootstrap_ci, paired_auc_difference
    from scintix.evaluation.threshold import choose_threshold
    from scintix.runtime import environment

    seeds = list(range(k)) if seeds is None else seeds
    if len(seeds) != k:
        raise SystemExit(f"--ensemble {k} needs {k} seeds, got {seeds}")
    extra = [f"train.epochs={epochs}", *(["eval.tta=[identity,shift]"] if tta else []), *(INTENSITY if intensity else [])]
    names = [f"medmnist-ens{'-int' if intensity else ''}-s{s}{'-tta' if tta else ''}" for s in seeds]
    members = [_run("medmnist-pneumonia", data, n, [*extra, f"train.seed={s}"]) for s, n in zip(seeds, names)]
    probs = {}
    for split in ("val", "test"):
        per = [_predictions(WORK / n, split) for n in names]
        assert all(p[2] == per[0][2] for p in per), "members' prediction rows must be in the same order"
        probs[split] = (per[0][0], np.mean([p[1] for p in per], axis=0), per[0][3])
    thr = choose_threshold(probs["val"][0], probs["val"][1], "youden")
    y, p, pids = probs["test"]
    ci = bootstrap_ci(y, p, pids, thr, 1000, 0.95, 0)
    half = bootstrap_ci(y, p, pids, 0.5, 1000, 0.95, 0)
    out = {"members": k, "member_epochs": epochs, "tta": tta, "wall_seconds_total": round(sum(m["wall_seconds_total"] for m in members), 1),
           "member_test_auc": [m["test_auc"]["value"] for m in members], "val_threshold": thr,
           "test_auc": ci["roc_auc"], "test_acc_at_val_threshold": ci["accuracy"], "test_acc_at_0.5": half["accuracy"]["value"],
           "member_runs": [m["details"]["run_dir"] for m in members]}
    env = environment()
    out.update(device=f"{env['cuda_device'] or 'cpu'} ({env['threads']} threads)", environment=env)
    if seeds != list(range(k)) or intensity:  # the older entry (seeds 0..K-1, no intensity) keeps its shape
        per = [_predictions(WORK / n, "test")[1] for n in names]
        out.update(seeds=seeds, overrides=extra, member_val_auc=[m["details"]["val"]["per_class"]["pneumonia"]["roc_auc"]["value"] for m in members],
                   ensemble_minus_member=[paired_auc_difference(y, p, q, pids, 2000, 0.95, 0) for q in per])
    return out


# Issue 14 item 5, declared on 2026-12-02 before it ran (one attempt, reported once; val cannot choose here: every recipe's val AUC
# is ~0.997 while the test split, the original Kermany test set, scores its normals as pneumonia). The hypothesis: the test
# split differs in contrast, noise and sharpness, which nnU-Net's intensity perturbations train a model to ignore.
INTENSITY = ["augment.noise=0.05", "augment.blur=0.75", "augment.contrast=0.25", "augment.gamma=0.5", "augment.intensity_prob=0.3"]


def _intensity_pair(data, extra: list[str], seeds: list[int]) -> dict:
    """The best recipe with and without nnU-Net's intensity augmentation, same seed and budget, paired on the test images;
    with several training seeds also the difference of their mean test AUCs over seeds (CI over images and seeds)."""
    import numpy as np

    from scintix.evaluation.bootstrap import (
        auc_difference_over_runs,
        paired_auc_difference,
    )

    def spec(run):  # the failure seen so far: the test split's normals scored as pneumonia at the val threshold
        return run["details"]["test"]["per_class"]["pneumonia"]["specificity"]["value"]

    short = ("test_auc", "test_acc_at_val_threshold", "test_acc_at_0.5", "val_threshold", "wall_seconds_total", "epochs_run")
    per_seed, probs = {}, {"with": [], "without": []}
    for seed in seeds:
        names = {"without": f"medmnist-best-rerun-s{seed}", "with": f"medmnist-intensity-s{seed}"}
        runs = {"without": _run("medmnist-pneumonia", data, names["without"], [*extra, f"train.seed={seed}"], reuse=True),
                "with": _run("medmnist-pneumonia", data, names["with"], [*extra, *INTENSITY, f"train.seed={seed}"], reuse=True)}
        (y, pa, ka, pids), (yb, pb, kb, _) = (_predictions(WORK / names[arm], "test") for arm in ("with", "without"))
        assert ka == kb and np.array_equal(y, yb), "the two runs' test rows must be the same images in the same order"
        probs["with"].append(pa), probs["without"].append(pb)
        per_seed[str(seed)] = {arm: {k: r[k] for k in short} | {"test_specificity_at_val_threshold": spec(r), "val_auc": r["details"]["val"]["per_class"]["pneumonia"]["roc_auc"]["value"]}
                               for arm, r in runs.items()} | {"test_auc_difference": paired_auc_difference(y, pa, pb, pids, 2000, 0.95, 0)}
    out = {"overrides": INTENSITY, "seeds": per_seed,
           "declared": "2026-12-02, before the runs: one attempt, reported whatever it gives; primary = paired test AUC difference at seed 0; "
                       "seeds 1 and 2 added after seed 0's result, to see whether it holds over training noise (the test split has now been used for this question)"}
    if len(seeds) > 1:
        out["test_auc_difference_over_seeds"] = auc_difference_over_runs(y, probs["with"], probs["without"], pids, 2000, 0.95, 0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--protocol-epochs", type=int, default=8)
    ap.add_argument("--best-epochs", type=int, default=None)
    ap.add_argument("--skip-protocol", action="store_true")
    ap.add_argument("--skip-best", action="store_true")
    ap.add_argument("--ensemble", type=int, default=0, help="K members of the best recipe (seeds 0..K-1)")
    ap.add_argument("--member-epochs", type=int, default=8)
    ap.add_argument("--tta", action="store_true", help="members evaluated with eval.tta=[identity,shift]")
    ap.add_argument("--ensemble-seeds", type=int, nargs="+", default=None, help="the members' training seeds [0..K-1]")
    ap.add_argument("--ensemble-intensity", action="store_true", help="members trained with nnU-Net's intensity augmentation (INTENSITY)")
    ap.add_argument("--declared", default=None, help="when and how the --ensemble attempt was declared (kept in its entry)")
    ap.add_argument("--intensity", action="store_true", help="the best recipe with vs without nnU-Net's intensity augmentation (INTENSITY), paired on test")
    ap.add_argument("--train-seeds", type=int, nargs="+", default=[0], help="--intensity at these training seeds (runs in WORK are reused)")
    a = ap.parse_args()
    data = require(SHARED / "pneumoniamnist" / "pneumoniamnist_28.npz")
    import json

    from _common import RESULTS

    previous = RESULTS / "medmnist_pneumonia.json"
    out: dict = json.loads(previous.read_text()) if previous.exists() else {}  # runs done separately are merged
    out.pop("benchmark", None), out.pop("written", None)
    out.update({"data": str(data), "published_test_auc_acc": PUBLISHED})
    if not a.skip_best:
        extra = [f"train.epochs={a.best_epochs}"] if a.best_epochs else []
        out["best_recipe"] = {**_run("medmnist-pneumonia", data, "medmnist-best", extra), **invocation()}
        write_result("medmnist_pneumonia", out)
        print("best:", {k: out["best_recipe"][k] for k in ("test_auc", "test_acc_at_0.5", "test_acc_at_val_threshold", "wall_seconds_total")})
    if a.ensemble:
        key = f"ensemble_{a.ensemble}x{a.member_epochs}" + ("_intensity" if a.ensemble_intensity else "") + ("_tta" if a.tta else "")
        out[key] = {**_ensemble(data, a.ensemble, a.member_epochs, a.tta, a.ensemble_seeds, a.ensemble_intensity), **invocation()}
        if a.declared:
            out[key]["declared"] = a.declared
        write_result("medmnist_pneumonia", out)
        print(key, {k: out[key][k] for k in ("test_auc", "test_acc_at_0.5", "test_acc_at_val_threshold", "wall_seconds_total", "member_test_auc")})
    if a.intensity:
        out["intensity_augment_pair"] = {**_intensity_pair(data, [f"train.epochs={a.best_epochs}"] if a.best_epochs else [], a.train_seeds), **invocation()}
        write_result("medmnist_pneumonia", out)
        r = out["intensity_augment_pair"]
        for seed, v in r["seeds"].items():
            print("seed", seed, "with", v["with"]["test_auc"]["value"], "without", v["without"]["test_auc"]["value"], "difference", v["test_auc_difference"])
        print("over seeds:", r.get("test_auc_difference_over_seeds"))
    if not a.skip_protocol:
        extra = [f"train.epochs={a.protocol_epochs}"]
        out["protocol_resnet18_28"] = {**_run("medmnist-protocol", data, "medmnist-protocol", extra), **invocation()}
        out["protocol_resnet18_28"]["note"] = f"protocol shortened to {a.protocol_epochs} of 100 epochs (CPU budget); step decay at 50%/75% of the shortened run"
        write_result("medmnist_pneumonia", out)
        print("protocol:", {k: out["protocol_resnet18_28"][k] for k in ("test_auc", "test_acc_at_0.5", "wall_seconds_total")})


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
