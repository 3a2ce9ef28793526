"""Report-guided segmentation (P4) vs our U-Net: same splits, same training budget, 3 seeds each.

    python benchmarks/text_segmentation.py [--only qata|p4zh|p4en] [--seeds 0 1 2] [--epochs-qata N] [--epochs-p4 N]
                                           [--size-qata H W] [--size-p4 H W] [--film] [--warm] [--view-prefix] [--sim-patients N]
                                           [--external-patients N] [--benign-foci P] [--frozen-image-path] [--body-position] [--prior] [--prior-input]

qata: ``qata-text`` vs the same recipe with ``model.name=unet`` on the real
QaTa-COV19 subset (train: 85 % of its train patients, selection: the other
15 %, reported: its ``val`` split; the official test split is held out
elsewhere). p4zh / p4en: ``p4-text`` (Chinese / English reports) vs the same
recipe with ``model.name=unet`` on SYNTHETIC whole-body bone scans
(``scintix simulate``, metastases only). The split is fixed (split seed 0);
``train.seed`` varies. Per seed: mean Dice over scans with a lesion and
pooled Dice with patient-level CIs, the paired per-scan Dice difference
(text - U-Net) with its CI, and the text model's Dice with its own report, no
report and another patient's report. Over seeds: the per-scan Dice averaged
over the 3 seeds of each model, and its paired difference with a CI.
--warm (two-stage training, same total budget for both arms): each seed's
U-Net run above is the first stage; from its best checkpoint
(``model.weights``) one run continues the U-Net and one trains ``text_unet``
(its image path starts as that U-Net, the text layers at init), for the same
epochs; the paired difference is text - continued U-Net.
--external-patients N: afterwards, every p4zh/p4en model on N *new* simulated
patients (simulator seed 1; ``scintix evaluate RUN --data --out``: the run's
own thresholds, nothing chosen there) and the paired differences on them: a
test set large enough to see a 0.02 Dice difference. Key ``external``.
--sim-patients N: p4zh/p4en on N simulated patients instead of 200 (its own
data set and run folders, key suffix _n<N>), to see whether the report helps
more when there is more to learn its words from.
--benign-foci P: p4zh/p4en on scans that also carry, with probability P,
1-3 benign focal uptakes (``fracture``: ribs and spine, drawn exactly as
metastases are, so the image alone cannot tell them apart; the report names
them as benign), and every model segments metastases only
(``data.mask_column=mask_metastasis``). A different task from the default
one, where every hot spot is a lesion and the report adds little the image
lacks: this one measures whether the fusion uses what only the report says.
Own data sets and run folders, key suffix _benign<P>.
--frozen-image-path (with --warm): the second-stage text model trains its
text encoder and fusion layers only (``model.train_only``); its image path
stays the first-stage U-Net, so its Dice without a report is that U-Net's,
and report minus no report is what the fusion alone adds. Key suffix _frozen.
--body-position: the text models' position code in the body's frame
(``text.position=body``: y from the body's top to its bottom, x from its
centre) instead of the image's, so a named rib is at one code whatever the
patient's height and place on the table. Key suffix _bodypos.
--prior: the text models also add the site prior (``text.prior=true``: each
report token votes a coarse lesion map in the fusion's frame, summed over the
report, added to the foreground logits; zero at the start). Key suffix _prior.
--prior-input: the text models also get a site map in the body's frame fed into
the U-Net after its first block (``text.prior_input=true``; zero at the start),
trained against the masks by its own output head. Key suffix _priorin.
Writes benchmarks/results/text_segmentation.json. A run folder that finished
with the same config is reused (its training time read from its history).
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
    invocation,
    reexec_with_allocator_tuning,
    require,
    write_progress,
    write_result,
)


def _table(folder):
    """A run's test per_image.csv, or an external evaluation's (``scintix evaluate RUN --data --out``)."""
    own = folder / "eval" / "test" / "per_image.csv"
    return own if own.is_file() else folder / "test" / "per_image.csv"


def _per_scan(run_dir) -> dict[str, float]:
    with open(_table(run_dir)) as fh:
        return {r["path"]: float(r["dice"]) if r["dice"] != "" else float("nan") for r in csv.DictReader(fh)}


def _pids(run_dir) -> dict[str, str]:
    with open(_table(run_dir)) as fh:
        return {r["path"]: r["patient_id"] for r in csv.DictReader(fh)}


def _external(name: str, patients: int, dirs: dict[str, list], seeds, warm: bool) -> dict:
    """Every trained model of this data set on ``patients`` new simulated patients (simulator seed 1), as shipped."""
    from scintix.cli.__main__ import main as cli
    from scintix.training.external import evaluate_external

    data = WORK / f"sim-p4-text-external-n{patients}{_benign_tag()}"
    if not (data / "manifest.csv").is_file():
        cli(["simulate", str(data), "--n", str(patients), "--seed", "1", "--prevalence", *_prevalence()])
    out: dict = {"data": f"{patients} new SYNTHETIC patients (scintix simulate --seed 1, {', '.join(_prevalence())}), both views; each run's own thresholds", "runs": {}}
    ext_dirs: dict[str, list] = {m: [] for m in dirs}
    for model, folders in dirs.items():
        for seed, d in zip(seeds, folders):
            target = d.parent / f"{d.name}-external-n{patients}"
            if not (target / "test" / "metrics.json").is_file():
                evaluate_external(d, data, target)
            m = json.loads((target / "test" / "metrics.json").read_text())
            c = next(iter(m["per_class"]))
            tc = (m.get("text_conditions") or {}).get("conditions")
            out["runs"][f"{name}-{model}-s{seed}"] = {"dice": m["per_class"][c]["dice"], "global_dice": m["per_class"][c]["global_dice"],
                                                      "lesion_sensitivity": m["per_class"][c]["lesion_sensitivity"], "n": m["n"], "patients": m["patients"],
                                                      "text_conditions": {k: v["dice"] for k, v in tc.items()} if tc else None}
            ext_dirs[model].append(target)
            print(f"external {name}-{model}-s{seed}", "dice", round(m["per_class"][c]["dice"]["value"], 4), flush=True)
    text, base = ("warm_text_unet", "warm_unet") if warm else ("text_unet", "unet")
    for i, seed in enumerate(seeds):
        out["runs"][f"{name}-paired-s{seed}"] = _compare([ext_dirs[text][i]], [ext_dirs[base][i]], seed)
    out["text_minus_unet_over_seeds"] = _compare(ext_dirs[text], ext_dirs[base])
    for model in ext_dirs:
        out[f"{model}_dice_mean_sd"] = _mean_sd([out["runs"][f"{name}-{model}-s{s}"]["dice"]["value"] for s in seeds])
    return out


def _mean_sd(vals: list[float]) -> list[float]:
    """Mean and sample sd over seeds; the sd is null for one seed (not 0.0, which would read as no training noise)."""
    from scintix.training.oof import fold_sd

    sd = fold_sd(vals)
    return [float(np.mean(vals)), sd if np.isfinite(sd) else None]  # None: null in the JSON, which NaN is not


def _run(recipe: str, data, name: str, extra: list[str]) -> dict:
    from scintix.config import load_config
    from scintix.runfolder import load_run_config
    from scintix.training.run import train_run

    overrides = [f"data.source={data}", "train.progress=false", "train.tensorboard=false", *extra]
    cfg = load_config(recipe, overrides)
    run_dir = WORK / name
    done = run_dir / "eval" / "test" / "metrics.json"
    if done.is_file() and load_run_config(run_dir) == cfg:  # parsed, so settings added since then count at their defaults
        wall = float(list(csv.DictReader(open(run_dir / "history.csv")))[-1]["elapsed_s"])  # finished earlier with this config: reused
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        train_run(cfg, run_dir)
        wall = round(time.perf_counter() - start, 1)
    test = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())
    cls = next(iter(test["per_class"]))
    m = test["per_class"][cls]
    hist = list(csv.DictReader(open(run_dir / "history.csv")))
    return {"recipe": recipe, "overrides": overrides, "wall_seconds": wall, "epochs_run": len(hist), "run_dir": str(run_dir),
            "dice": m["dice"], "global_dice": m["global_dice"], "lesion_sensitivity": m["lesion_sensitivity"],
            "false_positive_lesions_per_image": m["false_positive_lesions_per_image"], "n": test["n"], "patients": test["patients"],
            "text_conditions": test.get("text_conditions"), "synthetic": test.get("synthetic")}


def _compare(a_dirs, b_dirs, seed: int = 0) -> dict:
    """Per-scan Dice of model a minus model b (each averaged over its seeds), paired; the CI resamples patients and,
    with several seeds (given in the same seed order on both sides), the seeds too (before 2026-12-02: patients only)."""
    from scintix.evaluation.bootstrap import mean_difference_over_runs

    a = [_per_scan(d) for d in a_dirs]
    b = [_per_scan(d) for d in b_dirs]
    keys = sorted(set.intersection(*(set(x) for x in a + b)))
    pid = _pids(a_dirs[0])
    return mean_difference_over_runs([[x[k] for k in keys] for x in a], [[x[k] for k in keys] for x in b], [pid[k] for k in keys], 2000, 0.95, seed)


_prefix = "text-seg-"  # run folders; "text-seg-n400-" etc. with --sim-patients
_benign = 0.0  # --benign-foci


def _benign_tag() -> str:
    return f"-benign{_benign:g}" if _benign else ""


def _prevalence() -> list[str]:
    return ["metastasis=0.6", "arthritis=0", *([f"fracture={_benign:g}"] if _benign else [])]


FROZEN = "model.train_only=[text_encoder.*,fusions.*]"  # --frozen-image-path
BODY = "text.position=body"  # --body-position
PRIOR = "text.prior=true"  # --prior
PRIOR_IN = "text.prior_input=true"  # --prior-input
VIEW, NO_VIEW = "text.view_prefix=true", ["text.view_prefix=false"]  # set explicitly: p4-text's default is true; U-Nets read no report (always false)


def _dataset(name: str, patients: int = 200):
    from scintix.cli.__main__ import main as cli

    if name == "qata":
        return require(SHARED / "qata-cov19-text")
    sim = WORK / (("sim-p4-text" if patients == 200 else f"sim-p4-text-n{patients}") + _benign_tag())
    if not (sim / "manifest.csv").is_file():
        cli(["simulate", str(sim), "--n", str(patients), "--seed", "0", "--prevalence", *_prevalence()])
    return sim


def _warm(name: str, recipe: str, data, common: list[str], seeds, first_stage: list, entry: dict, text_extra: list[str]) -> dict[str, list]:
    """Second stage from each seed's trained U-Net: U-Net continued vs text_unet warm-started, same epochs."""
    dirs: dict[str, list] = {"warm_unet": [], "warm_text_unet": []}
    for seed, stage1 in zip(seeds, first_stage):
        start = f"model.weights={stage1 / 'checkpoints' / 'best.pt'}"
        for model in ("unet", "text_unet"):
            tag = f"{name}-warm_{model}-s{seed}"
            folder = f"{_prefix}{tag}" + ("-view" if VIEW in text_extra and model != "unet" else "") + ("-frozen" if FROZEN in text_extra and model != "unet" else "")
            folder += "-bodypos" if BODY in text_extra and model != "unet" else ""
            folder += "-prior" if PRIOR in text_extra and model != "unet" else ""
            folder += "-priorin" if PRIOR_IN in text_extra and model != "unet" else ""
            over = [*common, f"model.name={model}", f"train.seed={seed}", start, *(text_extra if model != "unet" else NO_VIEW)]
            if name == "p4en" and model == "unet":  # reads no report: p4zh's continued U-Net of this seed is the same run
                folder = f"{_prefix}p4zh-warm_unet-s{seed}"
                over = [o if not o.startswith("data.report_column=") else "data.report_column=report_zh" for o in over]
            res = _run(recipe, data, folder, over)
            entry["runs"][tag] = {**res, "first_stage": str(stage1)}
            dirs[f"warm_{model}"].append(WORK / folder)
            print(tag, "dice", round(res["dice"]["value"], 4), f"{res['wall_seconds']} s", flush=True)
        entry["runs"][f"{name}-warm-paired-s{seed}"] = _compare([dirs["warm_text_unet"][-1]], [dirs["warm_unet"][-1]], seed)
    entry["warm_text_minus_warm_unet_over_seeds"] = _compare(dirs["warm_text_unet"], dirs["warm_unet"])
    entry["warm_unet_minus_unet_over_seeds"] = _compare(dirs["warm_unet"], first_stage)
    return dirs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["qata", "p4zh", "p4en"], action="append")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs-qata", type=int, default=6)
    ap.add_argument("--epochs-p4", type=int, default=15)
    ap.add_argument("--size-qata", type=int, nargs=2, default=[96, 96])
    ap.add_argument("--size-p4", type=int, nargs=2, default=[256, 64])
    ap.add_argument("--film", action="store_true", help="also the FiLM variant")
    ap.add_argument("--warm", action="store_true", help="the two-stage protocol instead (U-Net, then U-Net continued vs text_unet warm-started); key <name>_warm")
    ap.add_argument("--film-seeds", type=int, nargs="+", default=None, help="its seeds (default: --seeds)")
    ap.add_argument("--view-prefix", action="store_true", help="text models read '[ANT] '/'[POST] ' + report (text.view_prefix); key <name>_view")
    ap.add_argument("--external-patients", type=int, default=0, help="p4zh/p4en: also every model on N new simulated patients (scintix evaluate --data), the paired difference there")
    ap.add_argument("--sim-patients", type=int, default=200, help="simulated patients for p4zh/p4en (200 = the default data set); key <name>..._n<N> otherwise")
    ap.add_argument("--frozen-image-path", action="store_true", help="with --warm: the text model trains its text encoder and fusion only; key suffix _frozen")
    ap.add_argument("--body-position", action="store_true", help="text models: position code in the body's frame (text.position=body); key suffix _bodypos")
    ap.add_argument("--prior", action="store_true", help="text models: also the site prior (text.prior=true); key suffix _prior")
    ap.add_argument("--prior-input", action="store_true", help="text models: also a site map fed into the U-Net (text.prior_input=true); key suffix _priorin")
    ap.add_argument("--benign-foci", type=float, default=0.0, help="p4zh/p4en: scans also carry benign look-alike foci with this probability; metastases segmented; key <name>..._benign<P>")
    a = ap.parse_args()
    global _prefix, _benign
    if a.sim_patients != 200:
        _prefix = f"text-seg-n{a.sim_patients}-"
    if a.benign_foci:
        if "qata" in (a.only or ["qata"]):
            ap.error("--benign-foci is for the simulated bone scans: add --only p4zh (or p4en)")
        _benign = a.benign_foci
        _prefix = f"{_prefix}benign{a.benign_foci:g}-"
    if a.frozen_image_path and not a.warm:
        ap.error("--frozen-image-path is a second-stage setting: add --warm")
    if a.warm and a.film:
        ap.error("--warm and --film: run them one after the other")
    import torch

    previous = RESULTS / "text_segmentation.json"
    results = json.loads(previous.read_text())["datasets"] if previous.is_file() else {}  # datasets not repeated now are kept
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    for name in a.only or ["qata", "p4zh"]:
        data = _dataset(name, a.sim_patients)
        if name == "qata":
            recipe, size, epochs, extra = "qata-text", a.size_qata, a.epochs_qata, []
        else:
            recipe, size, epochs = "p4-text", a.size_p4, a.epochs_p4
            extra = ["data.report_column=report_zh" if name == "p4zh" else "data.report_column=report"]
        # one run per arm (the recipe's stages are what --warm measures, run here as separate runs)
        common = [f"data.image_size=[{size[0]},{size[1]}]", f"train.epochs={epochs}", "eval.n_bootstrap=1000", "stages=[]", *extra,
                  *(["data.mask_column=mask_metastasis"] if _benign else [])]  # --benign-foci refuses qata
        entry: dict = {"recipe": recipe, "image_size": size, "epochs": epochs, "split_seed": 0, "seeds": a.seeds, "runs": {}}
        key = (f"{name}_warm" if a.warm else name) + ("_view" if a.view_prefix else "") + (f"_n{a.sim_patients}" if a.sim_patients != 200 and name != "qata" else "")
        key += _benign_tag().replace("-", "_") + ("_frozen" if a.frozen_image_path else "") + ("_bodypos" if a.body_position else "") + ("_prior" if a.prior else "") + ("_priorin" if a.prior_input else "")
        if _benign:
            entry["task"] = (f"metastases only, on scans that also carry benign look-alike foci (fracture={_benign:g}: ribs/spine, drawn as metastases are; "
                             "the report names them as benign): what only the report says")
        text_extra = ([VIEW] if a.view_prefix else NO_VIEW) + ([FROZEN] if a.frozen_image_path else []) + ([BODY] if a.body_position else []) + ([PRIOR] if a.prior else []) + ([PRIOR_IN] if a.prior_input else [])
        models = ("unet",) if a.warm else ("unet", "text_unet")
        dirs: dict[str, list] = {m: [] for m in models}
        for seed in a.seeds:
            for model in models:
                tag = f"{name}-{model}-s{seed}"
                folder, over = f"{_prefix}{tag}", [*common, f"model.name={model}", f"train.seed={seed}", *(text_extra if model != "unet" else NO_VIEW)]
                if model != "unet" and a.view_prefix:
                    folder = f"{folder}-view"
                if model != "unet" and a.body_position:
                    folder = f"{folder}-bodypos"
                if model != "unet" and a.prior:
                    folder = f"{folder}-prior"
                if model != "unet" and a.prior_input:
                    folder = f"{folder}-priorin"
                if name == "p4en" and model == "unet":  # the U-Net reads no report: p4zh's run of the same seed is the same run
                    folder = f"{_prefix}p4zh-unet-s{seed}"
                    over = [o if not o.startswith("data.report_column=") else "data.report_column=report_zh" for o in over]
                res = _run(recipe, data, folder, over)
                entry["runs"][tag] = res
                dirs[model].append(WORK / folder)
                print(tag, "dice", round(res["dice"]["value"], 4), "global", round(res["global_dice"]["value"], 4), f"{res['wall_seconds']} s", flush=True)
            if not a.warm:
                entry["runs"][f"{name}-paired-s{seed}"] = _compare([dirs["text_unet"][-1]], [dirs["unet"][-1]], seed)
            results[key] = {**entry, "device": device, **invocation()}
            write_progress("text_segmentation", {"device": device, "datasets": results})  # the results file: once the entry is complete
        if a.film:  # the simpler fusion, same seeds
            dirs["text_unet_film"] = []
            for seed in a.film_seeds or a.seeds:
                tag = f"{name}-text_unet_film-s{seed}"
                folder = f"{_prefix}{tag}" + ("-view" if a.view_prefix else "") + ("-bodypos" if a.body_position else "") + ("-prior" if a.prior else "") + ("-priorin" if a.prior_input else "")
                entry["runs"][tag] = _run(recipe, data, folder, [*common, "model.name=text_unet_film", f"train.seed={seed}", *text_extra])
                dirs["text_unet_film"].append(WORK / folder)
                entry["runs"][f"{name}-film-paired-s{seed}"] = _compare([dirs["text_unet_film"][-1]], [dirs["unet"][a.seeds.index(seed)]], seed)
                print(tag, "dice", round(entry["runs"][tag]["dice"]["value"], 4), f"{entry['runs'][tag]['wall_seconds']} s", flush=True)
            n = len(dirs["text_unet_film"])
            entry["film_minus_unet_over_seeds"] = _compare(dirs["text_unet_film"], dirs["unet"][:n])
            entry["film_minus_text_unet_over_seeds"] = _compare(dirs["text_unet_film"], dirs["text_unet"][:n])
        if a.warm:
            dirs.update(_warm(name, recipe, data, common, a.seeds, dirs["unet"], entry, text_extra))
        if a.warm:
            d = entry["warm_text_minus_warm_unet_over_seeds"]
        else:
            d = entry["text_minus_unet_over_seeds"] = _compare(dirs["text_unet"], dirs["unet"])
        for model in dirs:
            seeds = a.film_seeds or a.seeds if model == "text_unet_film" else a.seeds
            entry[f"{model}_dice_mean_sd"] = _mean_sd([entry["runs"][f"{name}-{model}-s{s}"]["dice"]["value"] for s in seeds])
        if a.external_patients and name != "qata":
            entry["external"] = _external(name, a.external_patients, dirs, a.seeds, a.warm)
            e = entry["external"]["text_minus_unet_over_seeds"]
            print(key, "external: text - unet Dice", round(e["value"], 4), [round(e["ci_low"], 4), round(e["ci_high"], 4)], flush=True)
        results[key] = {**entry, "device": device, **invocation()}
        write_result("text_segmentation", {"device": device, "datasets": results})
        print(key, "text - unet Dice", round(d["value"], 4), [round(d["ci_low"], 4), round(d["ci_high"], 4)], flush=True)


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
