"""Render the README's results tables from benchmarks/results/*.json (numbers are never typed by hand).

    python benchmarks/results_table.py            # print markdown
    python benchmarks/results_table.py --readme   # replace the block between the RESULTS markers in README.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from _tables_segmentation import (
    seg_misses,
    segmentation,
    text_grounding,
    text_segmentation,
    text_segmentation_cv,
)
from _tables_synthesis import (
    ci,
    gan_augmentation,
    gan_probe,
    p2_wholebody,
    p3_thyroid,
    sr_bs80k,
)

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "benchmarks" / "results"


def p1() -> list[str]:
    path = RES / "p1_thoracic.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### P1 on BS-80K right-chest crops (real data, `benchmarks/p1_thoracic.py`)", "",
           "ResNet-18 (MONAI, stride-2 stem), 160x64, percentile normalisation, inverse-frequency loss weights, patient-grouped 70/20/10 split (seed 0), "
           "threshold by Youden on val. 95% CIs: patient-level bootstrap, 1000 replicates. A quarter of BS-80K patients is held out elsewhere: not the final word.", "",
           "| model | split | n (pos) | ROC-AUC | PR-AUC | sensitivity | specificity | F1 | bal. acc. | epochs | train time |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    eps = {o.split("=")[1] for r in d["runs"].values() for o in r["overrides"] if o.startswith("train.epochs=")}
    if eps:
        out[2] += f" Trained with `--epochs {', '.join(sorted(eps))}` (the recipe's default is 24) to fit the session's CPU time."
    names = {"ant": "anterior view", "post": "posterior view", "both": "two-view (ANT+POST channels, per patient)"}
    for key, r in d["runs"].items():
        for split in ("val", "test"):
            m = r[split]["per_class"]["abnormal"]
            pos = r[split]["positives"]["abnormal"]
            out.append(f"| {names.get(key, key)} | {split} | {r[split]['n']} ({pos}) | {ci(m['roc_auc'])} | {ci(m['pr_auc'])} | {ci(m['recall'])} | {ci(m['specificity'])} | "
                       f"{ci(m['f1'])} | {ci(m['balanced_accuracy'])} | {len(r['history'])} | {r['wall_seconds'] / 60:.0f} min |")
    return out + [""]


def p1_cv() -> list[str]:
    path = RES / "p1_cv.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### P1 recipes by 5-fold cross-validation over all BS-80K patients (`benchmarks/p1_cv.py`)", "",
           f"Device: {d.get('device')}, bf16 autocast unless a row names another. `scintix cv` protocol: patient-grouped, label-stratified folds; each fold's run is tested on its fold only and selects "
           "its checkpoint, threshold and temperature on a grouped 15 % of the other folds' patients. Pooled: all out-of-fold probabilities "
           "together (patient-level bootstrap CI); sensitivity/specificity at each fold's own validation threshold. Target (issue 14): pooled >= 0.985, fold sd <= 0.01. "
           "`baseline` is the recipe as it was until 2026-12-01 (balanced batches); `loss_weighted` beat it and is the recipe now.", "",
           "| variant | images (pos.) | fold ROC-AUC | pooled OOF ROC-AUC | pooled sensitivity | pooled specificity | paired difference | wall (device if not the above) |",
           "|---|---|---|---|---|---|---|---|"]
    for name, s in d["variants"].items():
        if name.startswith("p1_"):  # P1's own arms: their own table below
            continue
        pairs = []  # each paired difference the variant records (a re-evaluated one: from its source and from the reference)
        for against in (k[len("minus_"):] for k in s if k.startswith("minus_") and not k.endswith("_over_seeds")):
            ref = d["variants"].get(against, {})
            bf16 = "earlier_run_bf16" in ref and abs(s[f"minus_{against}"]["pooled_auc_b"] - ref["pooled_oof_auc"]["value"]) > 1e-9  # paired before the reference was rerun
            what = "its seed 0 (the same recipe: training noise alone)" if against == "seed0" else against
            pairs.append(f"{ci(s[f'minus_{against}']['pooled_auc_difference'])} vs {what}{' (its bf16 run)' if bf16 else ''}")
        out.append(f"| {name} | {s['n']} ({s['positives']}) | " + ", ".join(f"{f['roc_auc']:.3f}" for f in s["per_fold"])
                   + f"; {s['fold_auc_mean']:.3f} ± {s['fold_auc_sd']:.3f} | {ci(s['pooled_oof_auc'])} | {ci(s['pooled_sensitivity_at_fold_thresholds'])} | "
                   f"{ci(s['pooled_specificity_at_fold_thresholds'])} | {'; '.join(pairs)} | {s.get('wall_seconds_total', s['wall_seconds_this_call']) / 60:.0f} min"
                   f"{f' ({dev})' if (dev := s.get('device', d.get('device'))) != d.get('device') else ''} |")
    for name, s in d["variants"].items():  # a variant rerun on another machine: what its earlier run gave (numerics alone move fold AUCs)
        if (e := s.get("earlier_run_bf16")):
            out += ["", f"`{name}` above is a rerun in fp32 (this CPU had no bf16); the same recipe, folds and seed earlier, with bf16 autocast: folds "
                    + ", ".join(f"{f['roc_auc']:.3f}" for f in e["per_fold"]) + f"; {e['fold_auc_mean']:.3f} ± {e['fold_auc_sd']:.3f}, pooled {ci(e['pooled_oof_auc'])} "
                    f"(per fold, fp32 - bf16: " + ", ".join(f"{a['roc_auc'] - b['roc_auc']:+.3f}" for a, b in zip(s["per_fold"], e["per_fold"]))
                    + "). The pairings marked \"its bf16 run\" were made with that run."]
    for name, s in d["variants"].items():  # comparisons over several training seeds (--train-seeds): training noise inside the CI
        for k, c in s.items():
            if k.startswith("minus_") and k.endswith("_over_seeds"):
                dd = c["pooled_auc_difference"]
                out += ["", f"Over training seeds {c['seeds']} (same folds), `{name}` minus `{k[len('minus_'):-len('_over_seeds')]}`: mean pooled AUC "
                        f"{c['pooled_auc_a']:.3f} (per seed " + ", ".join(f"{v:.3f}" for v in dd["runs_auc_a"]) + f") vs {c['pooled_auc_b']:.3f} (per seed "
                        + ", ".join(f"{v:.3f}" for v in dd["runs_auc_b"]) + f"), difference {ci(dd)} (CI resampling patients and each side's seeds)"
                        + (f"; `{name}`'s seeds averaged (an ensemble, still out of fold): {ci(s['seed_ensemble_pooled_oof_auc'])}." if "seed_ensemble_pooled_oof_auc" in s else ".")]
    for members, e in d.get("ensembles", {}).items():  # several finished CVs averaged per image (p1_cv.py --ensemble): still out of fold
        out += ["", f"Ensemble, no training (`p1_cv.py --ensemble`): the mean out-of-fold probability of {', '.join(f'`{m}`' for m in e['members'])}: pooled ROC-AUC "
                f"{ci(e)}; minus `{e['against']}` alone, paired {ci(e['minus_against'])}."]
    fv = d.get("fused_views")
    if fv:
        out += ["", f"Patient level, both views (issue 14, item 3): per patient, the mean of `{fv['ant']}` (anterior) and `{fv['post']}` (posterior) out-of-fold "
                f"probabilities, each from a model that never saw the patient; truth = {fv['truth']}.", "",
                "| patients (pos.) | fused ROC-AUC | anterior alone | posterior alone | fused - anterior (paired) | fused - posterior (paired) |",
                "|---|---|---|---|---|---|",
                f"| {fv['patients']} ({fv['positive_patients']}) | {ci(fv['fused_auc'])} | {ci(fv['a_auc'])} | {ci(fv['b_auc'])} | {ci(fv['fused_minus_a'])} | {ci(fv['fused_minus_b'])} |"]
    return out + [""] + p1_paper_table(d) + fold_sd_floor()


def fold_sd_floor() -> list[str]:
    path = RES / "fold_sd_floor.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = [f"How much five fold AUCs scatter by chance alone (`benchmarks/fold_sd_floor.py`): a recipe of known true AUC scored on folds of these sizes "
           f"({', '.join(str(f['positives']) for f in d['folds'])} abnormal of ~{d['folds'][0]['n']}), {d['model']}, {d['reps']} repetitions. "
           "Hanley-McNeil's standard error (exponential scores) is larger: the floor depends on the score distribution.", "",
           "| true AUC | fold sd, median [5%, 95%] | P(fold sd <= 0.01) | one fold's AUC sd | Hanley-McNeil SE, one fold |", "|---|---|---|---|---|"]
    for r in d["rows"]:
        lo, hi = r["fold_sd_90pct_range"]
        out.append(f"| {r['true_auc']} | {r['fold_sd_median']:.4f} [{lo:.4f}, {hi:.4f}] | {r['p_fold_sd_at_most_0.01']:.2f} | {r['single_fold_auc_sd']:.4f} | {r['hanley_mcneil_se_one_fold']:.4f} |")
    for name, per in d.get("empirical_fold_bootstrap", {}).items():
        out += ["", f"Model-free, from `{name}`'s own out-of-fold scores (each fold's patients resampled, 1000 times): fold ROC-AUC +- its bootstrap sd "
                + ", ".join(f"{r['auc']:.3f} +- {r['bootstrap_sd']:.3f}" for r in per) + f" (mean sd {sum(r['bootstrap_sd'] for r in per) / len(per):.3f})."]
    return out + [""]


P1_PUBLISHED = {"accuracy": 0.9807, "precision": 0.9900, "recall": 0.9830, "specificity": 0.9890, "f1": 0.9802, "auc": 0.9933}


def p1_paper_table(d: dict) -> list[str]:
    rows = {k: v for k, v in d["variants"].items() if k.startswith("p1_")}
    if not rows:
        return []
    out = ["P1's comparison (issue 14, item 4; `p1_cv.py --p1-table`): the recipe with P1's model, normalised (percentile) or raw intensities, without "
           "augmentation or with P1's offline augmented dataset (4 fixed geometric copies per training image, 6 epochs). Pooled out of fold over "
           "all 2,195 patients, at each fold's validation threshold; 95% patient-level CIs. P1's row is from its private data, test split, "
           "augmented data without normalisation.", "",
           "| model | intensities | augmented dataset | accuracy | precision | recall | specificity | F1 | ROC-AUC | wall (device) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in rows.items():
        _, model, norm, aug = name.split("_")
        out.append(f"| {model} | {'normalised' if norm == 'norm' else 'raw'} | {'with' if aug == 'augds' else 'without'} | "
                   + " | ".join(ci(s[f"pooled_{m}_at_fold_thresholds"]) if f"pooled_{m}_at_fold_thresholds" in s else "" for m in ("accuracy", "precision", "sensitivity", "specificity", "f1"))
                   + f" | {ci(s['pooled_oof_auc'])} | {s['wall_seconds_this_call'] / 60:.0f} min ({s.get('device', d.get('device'))}) |")
    p = P1_PUBLISHED
    out.append(f"| P1 (published, private data) | raw | with | {p['accuracy']:.3f} | {p['precision']:.3f} | {p['recall']:.3f} | {p['specificity']:.3f} | {p['f1']:.3f} | {p['auc']:.3f} | |")
    for name, s in rows.items():
        if (diff := s.get("minus_loss_weighted")):
            ref = d["variants"].get("loss_weighted", {}).get("pooled_oof_auc", {}).get("value")
            which = f" (its earlier bf16 run, pooled {diff['pooled_auc_b']:.3f}: the out-of-fold file kept)" if ref is not None and abs(diff["pooled_auc_b"] - ref) > 1e-9 else ""
            out += ["", f"`{name}` minus the recipe (`loss_weighted`: normalised, online augmentation{which}), pooled out-of-fold ROC-AUC, paired on the same folds: "
                    f"{ci(diff['pooled_auc_difference'])}; per fold " + ", ".join(f"{v:+.3f}" for v in diff.get("per_fold_difference", [])) + "."]
    contrasts = d.get("p1_contrasts", {})
    if contrasts:
        out += ["", "P1's factors, each a paired difference of pooled out-of-fold ROC-AUC on the same folds (patient-level CI): "
                + "; ".join(f"{label}: {ci(c['pooled_auc_difference'])}" for label, c in contrasts.items()) + "."]
    return out + [""]


def medmnist() -> list[str]:
    path = RES / "medmnist_pneumonia.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### PneumoniaMNIST, official test split (`benchmarks/medmnist_pneumonia.py`)", "",
           "| method | test AUC | test ACC (0.5) | test ACC (val threshold) | training |", "|---|---|---|---|---|"]
    for name, (auc, acc) in d["published_test_auc_acc"].items():
        out.append(f"| {name} (published) | {auc:.3f} | {acc:.3f} | | |")
    for key, label in (("protocol_resnet18_28", "scintix, MedMNIST protocol ResNet-18 (28)"), ("best_recipe", "scintix best CPU recipe (`medmnist-pneumonia`)")):
        if key in d:
            r = d[key]
            note = f" ({r['note']})" if r.get("note") else ""
            out.append(f"| {label}{note} | {ci(r['test_auc'])} | {r['test_acc_at_0.5']:.3f} | {ci(r['test_acc_at_val_threshold'])} | "
                       f"{r['epochs_run']} epochs, {r['wall_seconds_total'] / 60:.1f} min total |")
    notes: list[str] = []
    for key in sorted(k for k in d if k.startswith("ensemble_")):
        r = d[key]
        seeds = ", ".join(map(str, r["seeds"])) if "seeds" in r else f"0..{r['members'] - 1}"
        intensity = " with intensity augmentation" if any(o.startswith("augment.noise") for o in r.get("overrides", [])) else ""
        label = (f"scintix, ensemble of {r['members']} `medmnist-pneumonia` runs{intensity} (seeds {seeds})" + (" + shift TTA" if r["tta"] else "")
                 + f", threshold on the ensemble's val probabilities; members' test AUC {min(r['member_test_auc']):.3f}-{max(r['member_test_auc']):.3f}")
        out.append(f"| {label} | {ci(r['test_auc'])} | {r['test_acc_at_0.5']:.3f} | {ci(r['test_acc_at_val_threshold'])} | "
                   f"{r['members']} x {r['member_epochs']} epochs, {r['wall_seconds_total'] / 60:.1f} min total, {r.get('device', '')} |")
        if "ensemble_minus_member" in r:
            notes.append(f"`{key}`" + (f" (declared {r['declared']})" if r.get("declared") else "") + ": the ensemble's test AUC minus each member's, paired on the test images: "
                         + "; ".join(f"seed {s} {ci(x)}" for s, x in zip(r["seeds"], r["ensemble_minus_member"])) + ".")
    return out + medmnist_intensity(d.get("intensity_augment_pair")) + (["", *notes] if notes else []) + [""]


def medmnist_intensity(r: dict | None) -> list[str]:
    """Rows of the declared attempt (issue 14 item 5): the best recipe with vs without nnU-Net's intensity augmentation, per seed, and the paired differences."""
    if not r:
        return []
    out = []
    for seed, v in r["seeds"].items():
        for arm, label in (("without", "best CPU recipe rerun"), ("with", "+ intensity augmentation")):
            x = v[arm]
            out.append(f"| scintix {label}, seed {seed} | {ci(x['test_auc'])} | {x['test_acc_at_0.5']:.3f} | {ci(x['test_acc_at_val_threshold'])} | "
                       f"{x['epochs_run']} epochs, {x['wall_seconds_total'] / 60:.1f} min total |")
    diffs = "; ".join(f"seed {seed} {ci(v['test_auc_difference'])}" for seed, v in r["seeds"].items())
    lines = ["", f"Intensity augmentation (`{' '.join(r['overrides'])}`), declared before it ran ({r['declared']}): test AUC with minus without, "
                 f"paired on the test images, {diffs}."]
    if "test_auc_difference_over_seeds" in r:
        o = r["test_auc_difference_over_seeds"]
        lines[-1] += (f" Over the {len(r['seeds'])} seeds (mean test AUC {sum(o['runs_auc_a']) / len(o['runs_auc_a']):.3f} with, "
                      f"{sum(o['runs_auc_b']) / len(o['runs_auc_b']):.3f} without; the CI resamples images and seeds): {ci(o)}.")
    return out + lines


def speed() -> list[str]:
    out = []
    path = RES / "speed.json"
    if path.exists():
        d = json.loads(path.read_text())
        a = d["arms"]
        what = {"plain": "plain fp32 eager: decode + resize every access, MONAI RandAffine per sample, NCHW, foreach AdamW",
                "cache": "+ preprocessing cached in memory", "batch_aug": "+ one affine grid per batch (BatchAugmenter)", "bf16": "+ bf16 autocast (native on this CPU)",
                "nhwc": "+ channels-last", "compile": "+ torch.compile", "alloc": "+ glibc allocator thresholds", "fused": "+ fused AdamW",
                "ours": "**scintix default**: cache, batched augmentation, bf16 (auto), fused AdamW, allocator, channels-last when timed faster",
                "ours+nhwc": "scintix default, channels-last forced", "ours+compile": "scintix default + torch.compile"}
        out += ["### Training loop speed (`benchmarks/speed.py`)", "",
                f"{d['model']} at {d['size'][0]}x{d['size'][1]}, batch {d['batch']}, {d['data']}, end to end (data, augmentation, forward, backward, step), "
                f"median of {d.get('repeats', 1)} interleaved runs of {d['steps_timed']} steps, each in a fresh process; CPU with native bf16: {d.get('native_bf16')}:", "",
                "| loop | images/s | vs plain | note |", "|---|---|---|---|"]
        for k, v in a.items():
            if "images_per_s" not in v:
                out.append(f"| {what.get(k, k)} | failed | | {v.get('error', '')} |")
                continue
            note = f"compile + warm-up {v['warmup_and_compile_s']:.0f} s" if "compile" in v["levers"] else (f"channels_last={v.get('channels_last')}" if "nhwc_auto" in v["levers"] else "")
            runs = ", ".join(f"{x:.0f}" for x in v.get("images_per_s_runs", []))
            out.append(f"| {what.get(k, k)} | {v['images_per_s']:.1f} ({runs}) | {v['images_per_s'] / a['plain']['images_per_s']:.2f}x | {note} |")
        out.append("")
        if "accuracy_check_synthetic" in d:
            out += ["Accuracy check: the same seeded run of the default job (SYNTHETIC crops) with per-sample and batched augmentation:", "",
                    "| path | val AUC | test AUC [95% CI] | seconds |", "|---|---|---|---|"]
            for k, v in d["accuracy_check_synthetic"].items():
                ci = v.get("test_auc_ci", [float("nan")] * 2)
                out.append(f"| {k} | {v['val_auc']:.4f} | {v['test_auc']:.4f} [{ci[0]:.3f}, {ci[1]:.3f}] | {v['seconds']:.0f} |")
            out.append("")
    path = RES / "time_to_accuracy.json"
    if path.exists():
        d = json.loads(path.read_text())
        out += ["### Time to accuracy, plain loop vs `scintix run` (`benchmarks/time_to_accuracy.py`)", "",
                f"{d['recipe']}, {d['epochs']} epochs, seeds {d['seeds']}; {d['data']}. Wall time from start (data reading included) to the first epoch "
                "whose validation ROC-AUC reaches the target, per seed (a dash: not reached):", "",
                "| target val AUC | plain loop, s | scintix, s | speed-up per seed |", "|---|---|---|---|"]
        fmt = lambda xs: ", ".join("-" if x is None else f"{x:.0f}" for x in xs)  # noqa: E731
        for tg, r in d["time_to_target"].items():
            out.append(f"| {tg} | {fmt(r['plain']['seconds_per_seed'])} | {fmt(r['ours']['seconds_per_seed'])} | {', '.join(f'{x:.2f}x' for x in r['speedup_per_seed']) or '-'} |")
        best = {arm: ", ".join(f"{r['best_val_roc_auc']:.3f}" for r in d["runs"][arm].values()) for arm in ("plain", "ours")}
        out += [f"| all {d['epochs']} epochs (mean s) | {d['mean_total_s']['plain']:.0f} | {d['mean_total_s']['ours']:.0f} | {d['speedup_total']:.2f}x |", "",
                f"Best validation ROC-AUC per seed: plain {best['plain']}; scintix {best['ours']}.", ""]
    path = RES / "predict_speed.json"
    if path.exists():
        d = json.loads(path.read_text())
        if "by_engine_and_batch_size" in d:
            eng = d["by_engine_and_batch_size"]
            out += ["### `predict` throughput, torch vs ONNX Runtime (`benchmarks/predict_speed.py`)", "",
                    f"{d['model']} at {d['image_size'][0]}x{d['image_size'][1]}, {d['input']}, end to end (read, preprocess, model, calibration); "
                    f"torch autocast {d['torch_autocast']}, ONNX fp32 (opset {d['onnx_export']['opset']}, parity max |logit diff| "
                    f"{d['onnx_export']['parity']['max_abs_logit_diff']:.1e} on {d['onnx_export']['parity']['n_images']} test images, decisions identical: "
                    f"{d['onnx_export']['parity']['decisions_identical']}):", "",
                    "| batch | torch units/s | ONNX Runtime units/s |", "|---|---|---|"]
            for b in eng["torch"]:
                out.append(f"| {b} | {eng['torch'][b]['units_per_s']:.0f} | {eng['onnx'][b]['units_per_s']:.0f} |")
            m = d["model_only_median_latency"]
            out += ["", f"Model alone, median latency: batch 1 torch {m['torch_batch1_ms']:.1f} ms vs ONNX {m['onnx_batch1_ms']:.1f} ms; "
                    f"batch 32 torch {m['torch_batch32_ms']:.1f} ms vs ONNX {m['onnx_batch32_ms']:.1f} ms.", ""]
    path = RES / "serve_load.json"
    if path.exists():
        d = json.loads(path.read_text())
        out += ["### `scintix serve` on loopback (`benchmarks/serve_load.py`)", "",
                f"{d['scan']}; {d['cpu_threads']} CPU threads; `{d['command']}`. {d['notes'][0].upper() + d['notes'][1:]}.", "",
                "| model (input) | 100 concurrent /api/predict: ok / errors, req/s, p50 ms | 50 sequential /api/explain, Grad-CAM: p50 / p95 ms | Grad-CAM at bf16 vs float32: correlation, max abs diff |",
                "|---|---|---|---|"]
        for r in d["runs"]:
            c, e, h = r["concurrent_predict"], r["explain_gradcam_sequential"], r["heatmap_vs_float32"]["gradcam"]
            what = f"{r['model']} ({r['model_input'][0]}x{r['model_input'][1]}" + (f", {r['region'].replace('_', ' ')} cropped from the scan)" if r.get("region") else ", whole scan)")
            out.append(f"| {what} | {c['ok']} / {c['errors']}, {c['requests_per_s']:.1f}, {c['latency_ms']['p50']:.0f} | {e['p50_ms']:.0f} / {e['p95_ms']:.0f} | "
                       f"{h['correlation']:.5f}, {h['max_abs_diff']:.3f} |")
        out.append("")
    path = RES / "ddp_equivalence.json"
    if path.exists():
        d = json.loads(path.read_text())
        m, t = d["mechanics_lr_1e-9"], d["training"]
        out += ["### torchrun, 2 processes vs 1 (`benchmarks/ddp_equivalence.py`)", "", d["what"] + ":", "",
                "| comparison | max relative difference (losses, val AUC) | wall s |", "|---|---|---|",
                f"| mechanics: 1 epoch at lr 1e-9, 2 processes vs 1 | {m['max_relative_difference']:.1e} | {m['one_process']['wall_s']:.0f} vs {m['two_processes']['wall_s']:.0f} |",
                f"| training, {d['epochs']} epochs: 1 process, 1 vs 2 threads (noise floor) | {t['noise_floor_1_vs_2_threads']:.3f} | {t['one_process']['wall_s']:.0f} vs {t['one_process_2_threads']['wall_s']:.0f} |",
                f"| training, {d['epochs']} epochs: 2 processes vs 1 ({d['repeats']} repeats, identical to each other: {t['two_process_repeats_identical']}) | "
                f"{max(t['two_vs_one_process']):.3f} | {', '.join(str(round(x['wall_s'])) for x in t['two_processes'])} |", ""]
    path = RES / "model_speed.json"
    if path.exists():
        d = json.loads(path.read_text())
        out += ["### Every model, train images/s (`benchmarks/model_speed.py`)", "", f"batch {d['batch']}, fast path autocast: {d['autocast']}", "",
                "| model | size | plain fp32 NCHW | fast NCHW | fast NHWC | best | train ratio | inference ratio |", "|---|---|---|---|---|---|---|---|"]
        for r in d["rows"]:
            out.append(f"| {r['model']} | {r['size']} | {r['plain_train_img_s']:.2f} | {r['fast_nchw_train_img_s']:.2f} | {r['fast_nhwc_train_img_s']:.2f} | "
                       f"{r['best_layout_train']} | {r['train_ratio']:.2f} | {r['infer_ratio']:.2f} |")
        out.append("")
    return out


def regions() -> list[str]:
    path = RES / "regions.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### Body regions on simulated whole-body scans (`benchmarks/regions.py`)", "",
           f"{d['views']} SYNTHETIC views ({d['scans']} scans, ANT + POST) from seeds not used to fit the region fractions; "
           f"found box vs the simulator's true box, {len(d['failures'])} failure(s):", "",
           "| region | mean IoU | median IoU | IoU >= 0.9 | min IoU |", "|---|---|---|---|---|"]
    for r in ("head", "thorax", "abdomen_pelvis", "legs"):
        v = d[r]
        out.append(f"| {r} | {v['mean_iou']:.3f} | {v['median_iou']:.3f} | {v['frac_iou_ge_0.9']:.1%} | {v['min_iou']:.3f} |")
    return out + ["", "Only the thorax box has a target (IoU >= 0.9 on >= 95 % of scans); the others follow the body outline, the true boxes the bones.", ""]


def calibration_explain() -> list[str]:
    path = RES / "calibration_explain.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    f = d["faithfulness"]
    out = ["### Calibration and heat maps on real data (`benchmarks/calibration_explain.py`)", "",
           f"P1 anterior ResNet-18 on {d['data'].split(' (')[0]}; temperature T = {d['temperature']:.3f} fitted on val. "
           f"ROC AUC val {ci(d['roc_auc']['val'])}, test {ci(d['roc_auc']['test'])} (unchanged by T).", "",
           "| split | ECE raw | ECE calibrated |", "|---|---|---|"]
    for s, v in d["ece"].items():
        out.append(f"| {s} | {v['raw']:.4f} | {v['calibrated']:.4f} |")
    out += ["", f"Faithfulness on {f['images']} {f['split']} crops (target: each crop's predicted class; 10 steps, blurred baseline):", "",
            "| method | deletion AUC (lower is better) | insertion AUC (higher is better) | insertion - deletion |", "|---|---|---|---|"]
    for m, v in f["methods"].items():
        out.append(f"| {m} | {v['deletion']:.3f} | {v['insertion']:.3f} | {v['insertion_minus_deletion']:+.3f} |")
    return out + [""]


def bn_recalibration() -> list[str]:
    path = RES / "bn_recalibration.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())["runs"]
    out = ["### BatchNorm statistics: the eval-mode model vs the trained one (`benchmarks/bn_recalibration.py`)", "",
           "Gap: mean |train-mode - eval-mode| probability on un-augmented training batches drawn as in training (20 batches of 32). "
           "*Before*: running statistics as training left them (`train.precise_bn=false`, the old behaviour); *after*: recomputed before every "
           "validation (the default), so model selection sees the eval-mode model. Seed 0 throughout.", "",
           "| run | model | gap | val ROC-AUC | test ROC-AUC | val threshold | calibration | check |", "|---|---|---|---|---|---|---|---|"]
    names = {"p1_before": "P1 BS-80K anterior, before", "p1_after": "P1 BS-80K anterior, after", "quickstart_before": "quickstart (SYNTHETIC), before", "quickstart_after": "quickstart (SYNTHETIC), after"}
    for key, r in d.items():
        for label, st in (("as saved", r["as_saved"]), ("same weights, statistics recomputed afterwards", r.get("recomputed_after_training"))):
            if not st:
                continue
            thr = next(iter(r.get("thresholds", {}).get("thresholds", {}).values()), None) if label == "as saved" else None
            cal = r.get("calibration", {})
            cal_txt = (f"T = {cal['temperature']:.3f}" + ("" if cal.get("status", "fitted") == "fitted" else f" ({cal.get('status')})")) if cal and label == "as saved" else ""
            check = ("FLAGGED" if r.get("health", {}).get("degenerate") else "ok") if label == "as saved" and r.get("health") else ""
            out.append(f"| {names.get(key, key)} | {label} | {st['train_eval_gap_mean']:.3f} | {st['val_roc_auc']:.4f} | {st['test_roc_auc']:.4f} | {'' if thr is None else f'{thr:.3f}'} | {cal_txt} | {check} |")
    out.append("")
    return out


def _commands(d: dict, where: str = "") -> list[tuple[str, dict]]:
    """Every entry of a results file that records the command that made it: (its place in the file, the entry)."""
    found = [(where, d)] if isinstance(d.get("command"), str) else []
    for k, v in d.items():
        if isinstance(v, dict) and k != "last_written_by":
            found += _commands(v, f"{where}/{k}" if where else k)
    return found


def commands_block(names: list[str]) -> list[str]:
    """The commands that made a section's figures, from its results files (each entry's own, else the file's last writer)."""
    rows = []
    for name in names:
        d = json.loads((RES / f"{name}.json").read_text())
        found = _commands(d)
        last = d.get("last_written_by")
        if not isinstance(d.get("command"), str) and isinstance(last, dict) and last.get("command") not in {e["command"] for _, e in found}:
            found = [("", last), *found]  # the file's own figures, beside entries that record their own commands (probes, earlier tables)
        for where, e in found:
            code = e.get("code") if isinstance(e.get("code"), str) and len(e["code"]) < 120 else None
            rows.append(f"- `{name}.json`{' ' + where if where else ''}: `{e['command']}`" + (f" (code: {code})" if code else "")
                        + (" (derived afterwards from the settings the file records)" if e.get("command_note") else ""))
        if not found:
            rows.append(f"- `{name}.json`: no command recorded")
    return ["<details><summary>Commands that made these figures</summary>", "", *rows, "", "</details>", ""] if rows else []


def with_commands(lines: list[str]) -> list[str]:
    """Each section (### heading) followed by the commands of the results files it draws on (the scripts it names)."""
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("### "):
            sections.append([])
        sections[-1].append(line)
    out: list[str] = []
    seen: set[str] = set()
    for section in sections:
        names = [n for n in dict.fromkeys(re.findall(r"`benchmarks/(\w+)\.py`", "\n".join(section)))
                 if n not in seen and (RES / f"{n}.json").is_file()]
        seen.update(names)
        out += section + (commands_block(names) if section and section[0].startswith("### ") else [])
    return out


def main() -> None:
    lines = (p1() + p1_cv() + bn_recalibration() + segmentation() + text_segmentation() + text_grounding() + seg_misses() + text_segmentation_cv() + gan_augmentation() + gan_probe() + sr_bs80k() + p3_thyroid()
             + p2_wholebody() + calibration_explain() + medmnist() + regions() + speed())
    text = "\n".join(with_commands(lines))
    if "--readme" in sys.argv:
        readme = ROOT / "README.md"
        s = readme.read_text()
        start, end = "<!-- RESULTS START -->", "<!-- RESULTS END -->"
        head, _, rest = s.partition(start)
        _, _, tail = rest.partition(end)
        readme.write_text(f"{head}{start}\n{text}\n{end}{tail}")
    else:
        print(text)


if __name__ == "__main__":
    main()
