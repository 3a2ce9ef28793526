"""README tables of the segmentation benchmarks (our U-Net; P4's report-guided model by seeds and by cross-validation),
from benchmarks/results/*.json."""

from __future__ import annotations

import json
from pathlib import Path

from _tables_synthesis import ci

RES = Path(__file__).resolve().parent / "results"

__all__ = ["segmentation", "text_segmentation", "text_segmentation_cv", "text_grounding", "seg_misses"]


def segmentation() -> list[str]:
    path = RES / "segmentation.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### Segmentation (`benchmarks/segmentation.py`)", "",
           f"Device: {d.get('device')}. Dice/IoU/HD95 (pixels at the training resolution): mean over scans with a lesion; pooled Dice over all scans; "
           "lesions = 8-connected components; false-positive scan rate over lesion-free scans. 95% CIs: patient-level bootstrap.", "",
           "| run | data | reported on | n (patients) | Dice | IoU | pooled Dice | HD95 | lesion sens. | FP lesions/scan | FP scan rate | epochs | train time | img/s |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    data = {"qata": "QaTa-COV19 chest X-rays (real)", "p4": "simulated whole-body bone scans (SYNTHETIC)"}
    for key, r in d["runs"].items():
        res = r["test"]
        for cls, m in res["per_class"].items():
            out.append(f"| {r['recipe']} ({cls}) | {data.get(key, key)} | {'dataset val split' if key == 'qata' else 'test split'} | {res['n']} ({res['patients']}) | {ci(m['dice'])} | {ci(m['iou'])} | "
                       f"{ci(m['global_dice'])} | {ci(m['hd95'])} | {ci(m['lesion_sensitivity'])} | {ci(m['false_positive_lesions_per_image'])} | {ci(m['false_positive_scan_rate'])} | "
                       f"{len(r['history'])} | {r['wall_seconds'] / 60:.0f} min | {r.get('train_images_per_s_median') or 0:.1f} |")
    out.append("")
    return out


def mean_sd_cell(v, seeds: int) -> str:
    """"mean ± sd" over seeds; one seed has no sd (files before 2026-12-02 wrote 0.0 for it, later ones null), so none is shown."""
    return f"{v[0]:.3f} ± {v[1]:.3f}" if seeds > 1 and v[1] is not None else f"{v[0]:.3f} (one seed: no sd)"


def text_segmentation() -> list[str]:
    path = RES / "text_segmentation.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### Report-guided segmentation vs our U-Net (`benchmarks/text_segmentation.py`)", "",
           "Same recipe, split (seed 0) and training budget for both models; only `model.name` differs "
           "(`unet` vs `text_unet`, gated cross-attention at every decoder stage). Dice: mean over scans with a lesion, at the "
           "threshold chosen on validation; 95% CIs: patient-level bootstrap. Paired difference: per-scan Dice of the text model "
           "minus the U-Net's on the same scans. Wall time: training + evaluation of one run. Rows marked 'at 2222f81' were made "
           "with that commit's text_unet (gates initialised at 0, text encoder built before the U-Net); the others with the shipped "
           "code (gates at 0.1, the U-Net built first, so it starts from unet's weights). 'two-stage' rows: each seed's U-Net "
           "(the `unet` rows, 15 epochs) is the first stage; from its best checkpoint one run continues the U-Net (warm_unet) and "
           "one trains text_unet with that U-Net as its image path (warm_text_unet), 15 more epochs each: same total budget.", "",
           "| data | model | seed | Dice | pooled Dice | paired diff. vs U-Net | Dice, no report | Dice, another patient's report | wall |",
           "|---|---|---|---|---|---|---|---|---|"]
    names = {"qata": "QaTa-COV19 val (real), at 2222f81", "qata_shipped_code": "QaTa-COV19 val (real)", "p4zh": "bone scans, Chinese reports (SYNTHETIC)",
             "p4zh_at_2222f81": "bone scans, Chinese reports (SYNTHETIC), at 2222f81",
             "p4zh_warm": "bone scans, Chinese reports (SYNTHETIC), two-stage", "p4en": "bone scans, English reports (SYNTHETIC)"}

    def label(key: str) -> str:  # e.g. p4en_warm_view_n400
        if key in names:
            return names[key]
        base, _, rest = key.partition("_")
        parts = [names.get(base, base)] + [{"warm": "two-stage", "view": "reports opened by the view ([ANT]/[POST])", "frozen": "text model's image path frozen (fusion and text encoder trained)",
                                                   "bodypos": "position code in the body's frame",
                                                   "prior": "with the site prior (each report token votes a lesion map in that frame)",
                                                   "priorin": "with a site map fed into the U-Net (text.prior_input: the report's votes, body frame, "
                                                              "trained as its own head)"}.get(
            p, f"{p[1:]} patients" if p.startswith("n") else
            f"**metastases only, beside benign look-alike foci** (fracture={p[6:]}; the report names them)" if p.startswith("benign") else p)
            for p in rest.split("_") if p]
        return ", ".join(parts)

    def summary(where: str, stats: dict, warm: bool, diff: dict, seeds: int) -> str:
        """The over-seeds row: each model's mean ± sd Dice and the paired difference."""
        w, nan = "warm_" if warm else "", [float("nan")] * 2
        u, t = stats.get(f"{w}unet_dice_mean_sd", nan), stats.get(f"{w}text_unet_dice_mean_sd", nan)
        what = "warm text_unet vs U-Net continued" if warm else "text_unet"
        # entries written before 2026-12-02 resampled patients only; later ones resample the seeds too (their "ci" says so)
        how = " (CI: patients and seeds)" if "two-level" in diff.get("ci", "") else " (CI: patients only, not the seeds)" if seeds > 1 else ""
        return f"| {where} | **{what}, over {seeds} seeds** | | U-Net {mean_sd_cell(u, seeds)}, text {mean_sd_cell(t, seeds)} | | **{ci(diff)}**{how} | | | |"

    out[2] += " Devices: " + "; ".join(f"{label(k)}: {e.get('device')}" for k, e in d["datasets"].items()) + "."
    shown: dict[tuple, str] = {}  # run -> the data set whose rows show it (later data sets reuse first-stage and U-Net runs)
    for key, e in d["datasets"].items():
        reused = []
        for tag, r in e["runs"].items():
            if "recipe" not in r:
                continue
            # the same run whichever worktree made it; a folder name alone is not enough (reruns at other commits reuse names)
            folder = (r.get("run_dir", "").rsplit("/", 1)[-1], r["dice"]["value"], r.get("wall_seconds"))
            if folder[0] and shown.setdefault(folder, key) != key:
                reused.append(f"{tag.split('-')[1]} s{tag.split('-s')[-1]}")
                continue
            prefix, model, seed = tag.split("-")[0], tag.split("-")[1], tag.split("-s")[-1]
            tc = (r.get("text_conditions") or {}).get("conditions", {})
            paired = {"text_unet": e["runs"].get(f"{prefix}-paired-s{seed}"), "warm_text_unet": e["runs"].get(f"{prefix}-warm-paired-s{seed}"),
                      "text_unet_film": e["runs"].get(f"{prefix}-film-paired-s{seed}", e.get("film_minus_unet_seed0"))}.get(model)
            out.append(f"| {label(key)} {tuple(e['image_size'])}, {e['epochs']} ep. | {model} | {seed} | {ci(r['dice'])} | {ci(r['global_dice'])} | "
                       f"{ci(paired) if paired else ''} | {ci(tc['no_report']['dice']) if tc else ''} | {ci(tc['other_patient_report']['dice']) if tc else ''} | {r['wall_seconds'] / 60:.1f} min |")
        if reused:
            out.append(f"| {label(key)} | {', '.join(reused)}: the runs shown above, reused | | | | | | | |")
        if "text_minus_unet_over_seeds" in e:
            out.append(summary(label(key), e, False, e["text_minus_unet_over_seeds"], len(e["seeds"])))
        if "warm_text_minus_warm_unet_over_seeds" in e:
            out.append(summary(label(key), e, True, e["warm_text_minus_warm_unet_over_seeds"], len(e["seeds"])))
        x = e.get("external")
        if x:  # the same trained models on new simulated patients, at their own thresholds
            where = f"{label(key)}, **{x['runs'][next(iter(x['runs']))]['patients']} new patients** (external, their own thresholds)"
            for tag, r in x["runs"].items():
                if "dice" not in r or "unet-" not in tag or tag.split("-")[1] == "unet":
                    continue
                prefix, model, seed = tag.split("-")[0], tag.split("-")[1], tag.split("-s")[-1]
                paired = x["runs"].get(f"{prefix}-paired-s{seed}") if "text" in model else None
                tc = r.get("text_conditions") or {}
                out.append(f"| {where} | {model} | {seed} | {ci(r['dice'])} | {ci(r['global_dice'])} | {ci(paired) if paired else ''} | "
                           f"{ci(tc['no_report']) if tc else ''} | {ci(tc['other_patient_report']) if tc else ''} | |")
            out.append(summary(where, x, "warm_unet_dice_mean_sd" in x, x["text_minus_unet_over_seeds"], len(e["seeds"])))
        if "film_minus_unet_over_seeds" in e:
            out.append(f"| {label(key)} | **text_unet_film, over its seeds** | | | | **{ci(e['film_minus_unet_over_seeds'])}** "
                       f"(vs text_unet: {ci(e['film_minus_text_unet_over_seeds'])}) | | | |")
    out.append("")
    return out


def text_segmentation_cv() -> list[str]:
    path = RES / "text_segmentation_cv.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### Report-guided segmentation vs our U-Net by cross-validation (`benchmarks/text_segmentation_cv.py`)", "",
           "Two-stage, every simulated patient out of fold once (`scintix cv`, patient-grouped folds, split seed 0): stage 1 a U-Net CV; stage 2 from "
           "each fold's U-Net (`--init-from`), the U-Net continued (unet2) and `text_unet` warm-started (text), the same epochs. Dice: mean over "
           "scans with a lesion, pooled out of fold, patient-level CIs; differences paired scan by scan.", "",
           "| setting | device | arm | seed | pooled Dice | pooled (global) Dice | fold Dice | Dice, no report | Dice, another patient's report | wall |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for key, e in d["settings"].items():
        for name, r in e["arms"].items():
            arm, seed = name.rsplit("-s", 1)
            tc = (r.get("text_conditions") or {}).get("dice", {})
            out.append(f"| {key} ({e['folds']} folds, {e['epochs_per_stage']} ep. per stage) | {e['device']} | {arm} | {seed} | {ci(r['dice'])} | "
                       f"{ci(r['global_dice'])} | {r['fold_dice_mean']:.3f} ± {r['fold_dice_sd']:.3f} | {ci(tc['no_report']) if 'no_report' in tc else ''} | "
                       f"{ci(tc['other_patient_report']) if 'other_patient_report' in tc else ''} | {r['wall_seconds_this_call'] / 60:.1f} min |")
        for label, k in (("text - unet2 (primary)", "text_minus_unet2"), ("unet2 - unet", "unet2_minus_unet")):
            for c, r in e[k]["per_class"].items():
                out.append(f"| {key} | | **{label}**, {c} | | **{ci(r['dice_difference'])}** | | per fold {r['per_fold_difference_mean']:+.3f} ± {r['per_fold_difference_sd']:.3f} | | | |")
    return out + [""]


def text_grounding() -> list[str]:
    path = RES / "text_grounding.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### A report's sites, grounded alone and late-fused with our U-Net (`benchmarks/text_grounding.py`)", "",
           "SYNTHETIC bone scans. Each seed's continued U-Net of `text_segmentation.py --warm` (same data, split and runs) is the image path; a "
           "report encoder + site map (`scintix.models.grounding`) is trained on the training scans' reports and lesion masks alone (epoch "
           "by validation loss), then `sigmoid(U-Net lesion logit + alpha * map)` with alpha and the threshold chosen on validation "
           "(alpha 0 = the U-Net with its own threshold). Test scans with a lesion; the difference is paired per scan (CI over patients, and "
           "over the seeds in the last row). 'lesions in top 1 %': share of test lesions whose best map value is in their scan's top 1 % "
           "of pixels (with another patient's report in brackets).", "",
           "| data | seed | grounding epoch (run) | lesions in top 1 % | alpha | threshold (U-Net's) | U-Net Dice | fused Dice | fused - U-Net | "
           "Dice, another patient's report | grounding training |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for key, e in d.items():
        if not isinstance(e, dict) or "runs" not in e:
            continue
        data = f"{e['data'].split(':')[0]} ({e['device']})"
        for seed, r in e["runs"].items():
            g, t = r["grounding"], r["test"]
            out.append(f"| {data} | {seed.lstrip('s')} | {g['best_epoch']} ({g['epochs_run']}) | {g['test_lesions_in_top1pct']:.2f} "
                       f"({g['test_lesions_in_top1pct_other_report']:.2f}) | {r['alpha']:g} | {r['threshold']:g} ({r['unet_threshold_val']:g}) | "
                       f"{t['unet']['dice']:.3f} | {t['fused']['dice']:.3f} | {ci(r['fused_minus_unet'])} | {t['fused_other_report']['dice']:.3f} | "
                       f"{g['train_seconds'] / 60:.1f} min |")
        n = len(e["runs"])
        out.append(f"| {data} | **over {n} seeds** | | | | | {mean_sd_cell(e['unet_dice_mean_sd'], n)} | {mean_sd_cell(e['fused_dice_mean_sd'], n)} | "
                   f"**{ci(e['fused_minus_unet_over_seeds'])}** | {mean_sd_cell(e['fused_other_report_dice_mean_sd'], n)} (- own: "
                   f"{ci(e['other_report_minus_own_over_seeds'])}) | |")
    out.append("")
    return out


def seg_misses() -> list[str]:
    path = RES / "seg_misses.json"
    if not path.exists():
        return []
    d = json.loads(path.read_text())
    out = ["### Where the lesions are missed, by the site the report names (`benchmarks/seg_misses.py`)", "",
           "SYNTHETIC bone scans, the runs of `text_segmentation.py --warm --view-prefix --sim-patients 600` (test split, each run's threshold; "
           "the text model with its own report). A lesion is missed when no predicted pixel touches it. Contrast: the lesion's mean counts over "
           "those of a ring 1-3 pixels around it, at the model's size.", ""]
    contrast_shown = False
    for key, e in d.items():
        if not isinstance(e, dict) or "runs" not in e:
            continue
        extra = key.split("_")[3:]  # p4zh_view_n600[_priorin]
        out += [f"{'Its own U-Nets and text models' if extra else 'The U-Nets and text models'} of `text_segmentation.py` with "
                f"{' '.join('--prior-input' if p == 'priorin' else p for p in extra) or 'the cross-attention alone'}:", ""]
        totals: dict[str, int] = {}
        for r in e["runs"].values():
            for g, v in r["by_group"].items():
                totals[g] = totals.get(g, 0) + v["missed"]
        groups = [g for g in sorted(totals, key=lambda g: -totals[g]) if totals[g]]
        contrast = ("median_contrast_missed", "median_contrast_found") if any("median_contrast_found" in r for r in e["runs"].values()) else ()
        out += ["| run | missed / lesions | " + " | ".join([*groups, *(k[7:].replace("_", ", ") for k in contrast)]) + " |",
                "|---" * (len(groups) + len(contrast) + 2) + "|"]
        for name, r in e["runs"].items():
            cells = [f"{r['by_group'].get(g, {}).get('missed', 0)}/{r['by_group'].get(g, {}).get('lesions', 0)}" for g in groups]
            cells += ["" if r.get(k) is None else f"{r[k]:.2f}" for k in contrast]
            out.append(f"| {name} | {r['missed']}/{r['lesions']} | {' | '.join(cells)} |")
        out.append("")
        if "contrast_by_group" in e and not contrast_shown:
            contrast_shown = True
            c = e["contrast_by_group"]
            order = groups + [g for g in sorted(c["groups"], key=lambda g: c["groups"][g]["median"]) if g not in groups]
            out += [f"Contrast by site group, {c['scans']} at {c['image_size'][0]}x{c['image_size'][1]}: median [quartiles], lesions.", "",
                    "| " + " | ".join(order) + " |", "|---" * len(order) + "|",
                    "| " + " | ".join(f"{c['groups'][g]['median']:.2f} [{c['groups'][g]['q25']:.2f}, {c['groups'][g]['q75']:.2f}], {c['groups'][g]['lesions']}"
                                      for g in order) + " |", ""]
    return out
