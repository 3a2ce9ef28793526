"""README tables of the generative-augmentation benchmarks (issue: DCGAN, SRGAN, P3, P2), from benchmarks/results/*.json."""

from __future__ import annotations

import json
from pathlib import Path

RES = Path(__file__).resolve().parent / "results"

__all__ = ["ci", "gan_augmentation", "sr_bs80k", "p3_thyroid", "p2_wholebody"]


def ci(m: dict, digits: int = 3) -> str:
    if m.get("value") is None:
        return "n/a"
    lo, hi = m.get("ci_low"), m.get("ci_high")
    return f"{m['value']:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" if lo is not None else f"{m['value']:.{digits}f}"


def _mean_sd(v: list[float], digits: int = 3) -> str:
    m = sum(v) / len(v)
    sd = (sum((x - m) ** 2 for x in v) / max(len(v) - 1, 1)) ** 0.5
    return f"{m:.{digits}f} ± {sd:.{digits}f}"


def _difference_lines(by_name: dict, title: str) -> list[str]:
    """One bullet per compared pair: per label, the AUC and sensitivity differences of ``arm_difference``."""
    out = ["", title, ""]
    for name, per in by_name.items():
        out.append(f"- {name.replace('_minus_', ' - ')}: " + "; ".join(f"{c} AUC {ci(v['auc_of_seed_averaged_scores'], 4)}, sensitivity {ci(v['sensitivity_mean_over_seeds'])}"
                                                                 for c, v in per.items()))
    return out


def _load(name: str, needed: str) -> dict | None:
    path = RES / f"{name}.json"
    if not path.exists():
        return None
    d = json.loads(path.read_text())
    return d if needed in d else None


def gan_augmentation() -> list[str]:
    path = RES / "gan_augmentation.json"
    if not path.exists() or "differences" not in json.loads(path.read_text()):
        return []
    d = json.loads(path.read_text())
    g = d["gan"]
    out = ["### Does GAN augmentation help? BS-80K anterior crops (`benchmarks/gan_augmentation.py`)", "",
           f"Device: {d['device']}. {d['data']}. Classifier: {d['classifier']}, seeds {d['seeds']}. Generator: class-conditional DCGAN, "
           f"base {g['base_channels']} channels, {g.get('epochs_trained', g['epochs'])} epochs on the training patients ({g.get('training_seconds') or g['wall_seconds_this_call']:.0f} s), "
           f"{g['generated_abnormal']} abnormal crops sampled. Paired difference: test ROC-AUC of the seed-averaged scores, real + GAN minus real only, "
           "patient-level bootstrap CI.", "",
           "| arm | test ROC-AUC per seed | mean ± sd | sensitivity per seed (val threshold) | AUC difference vs real only | sensitivity difference (mean over seeds) |",
           "|---|---|---|---|---|---|"]
    arms = sorted({k.rsplit("-s", 1)[0] for k in d["runs"]}, key=lambda a: (a != "real_only", a))
    for arm in arms:
        runs = [d["runs"][f"{arm}-s{s}"] for s in d["seeds"]]
        aucs = [r["roc_auc"]["value"] for r in runs]
        diff = d["differences"].get(arm, {}).get("auc_of_seed_averaged_scores")
        sens = d["differences"].get(arm, {}).get("sensitivity_difference_mean_over_seeds")
        gen = runs[0].get("generated") or {}
        label = f"{arm} ({gen.get('train_images', 0)} generated + {gen.get('real_train_images', runs[0]['train_samples'])} real training crops)" if gen else arm
        out.append(f"| {label} | {', '.join(f'{a:.4f}' for a in aucs)} | {_mean_sd(aucs, 4)} | "
                   + ", ".join(f"{r['recall']['value']:.3f}" for r in runs) + f" | {ci(diff) if diff else ''} | {ci(sens) if sens else ''} |")
    q = d.get("quality")
    if q:
        pc = ", ".join(f"{c}: FID {m['fid']:.1f}, KID {m['kid']:.3f}" for c, m in q["per_class"].items())
        n = q["nearest"]
        out += ["", f"Quality ({q['feature_extractor'].split('/')[-1]} features): {pc}. Nearest training image: median RMS distance {n['median_distance']:.3f} "
                f"(real-to-real {n['real_median_distance']:.3f}); {n['closer_than_closest_real_pair']} generated crops closer to a training crop than the closest real pair."]
    return out + [""]



def gan_probe() -> list[str]:
    d = _load("gan_probe", "arms")
    if not d or not d["arms"]:
        return []
    out = ["### Why the GAN does not train on BS-80K at this budget: a diagnostic (`benchmarks/gan_probe.py`)", "",
           f"Device: {d['device']}. {d['data']}; base {d['base_channels']} channels, {d['epochs']} epochs, same seed per arm. D: the discriminator's hinge "
           "loss (2 = chance, 0 = perfect) and r = E[sign D(real)] (ADA's overfitting signal), per epoch; p: the augmentation probability. "
           "Spread / sharpness: generated-to-real ratios per class (1 = as varied / as sharp as real crops; spread << 1 = collapse).", "",
           "| arm | D loss by epoch | r by epoch | p by epoch | D(real) - D(fake), mean of the last 5 epochs | spread normal / abnormal | sharpness normal / abnormal | wall |",
           "|---|---|---|---|---|---|---|---|"]
    def row(h: list[dict], key: str) -> str:
        return ", ".join(f"{r[key]:.2f}" for r in h)

    for arm, e in d["arms"].items():
        h, end = e["history"], e["end"]
        spread = f"{end['normal']['spread_ratio']:.2f} / {end['abnormal']['spread_ratio']:.2f}"
        sharp = f"{end['normal']['sharpness_ratio']:.2f} / {end['abnormal']['sharpness_ratio']:.2f}"
        p = row(h, "ada_p") if "ada_p" in h[0] else "1 (always on)"
        margin = sum(r["d_real"] - r["d_fake"] for r in h[-5:]) / len(h[-5:])
        out.append(f"| {arm} | {row(h, 'd_loss')} | {row(h, 'd_real_sign')} | {p} | {margin:.2f} | {spread} | {sharp} | {e['wall_seconds'] / 60:.0f} min |")
    return out + [""]


def sr_bs80k() -> list[str]:
    d = _load("sr_bs80k", "scales")
    if not d or not d["scales"]:
        return []
    out = ["### SRGAN on real BS-80K crops (`benchmarks/sr_bs80k.py`)", "",
           f"{d['data']}. Perceptual loss on the features of a p1-thoracic classifier (`{Path(d['classifier']).name}`, 12 epochs, seed 0; "
           "its `forward_features` maps, weight 0.1) + adversarial 1e-3. Paired differences with patient-level CIs on the test split.", "",
           "| scale | PSNR SR / bicubic (dB) | SR - bicubic PSNR | SSIM SR / bicubic | SR - bicubic SSIM | classifier AUC original / bicubic / SR | SR - original AUC | SR - bicubic AUC |",
           "|---|---|---|---|---|---|---|---|"]
    for scale, e in d["scales"].items():
        q, c = e["psnr_ssim"], e["classifier"]["per_class"]["abnormal"]
        out.append(f"| {scale} ({q['images']} test crops, {c['positives']} abnormal; SR training {e.get('epochs', d['epochs'])} epochs, "
                   f"{e['wall_seconds_this_call'] / 60:.0f} min, {e.get('device', d['device'])}) | {q['sr_psnr']:.2f} / {q['bicubic_psnr']:.2f} | {ci(q['psnr_difference'], 2)} | {q['sr_ssim']:.4f} / {q['bicubic_ssim']:.4f} | "
                   f"{ci(q['ssim_difference'], 4)} | {c['auc_original']:.4f} / {c['auc_bicubic']:.4f} / {c['auc_sr']:.4f} | {ci(c['sr_minus_original'], 4)} | "
                   f"{ci(c['sr_minus_bicubic'], 4)} |")
    return out + [""]


def p3_thyroid() -> list[str]:
    d = _load("p3_thyroid", "summary")
    if not d:
        return []
    seeds = sorted({int(k.rsplit("-s", 1)[1]) for k in d["runs"]})
    out = ["### P3 on SYNTHETIC thyroid scans (`benchmarks/p3_thyroid.py`)", "",
           f"Device: {d['device']}. {d['data']}. Seeds {seeds}; test split, sample-based metrics (P3 reports accuracy 0.963 and recall, precision, "
           "specificity, F1 above 0.938 on its private data; not comparable: different data).", "",
           "Arms: plain = ResNet-18, one stage; cross_1 = cross-feature ResNet, one stage; cross_2 = `p3-thyroid` as shipped (stage 1 on single-feature "
           "images, stage 2 retrains layer4 + cross projections + fc at lr 1e-4 on the whole training split); cross_2_gan = cross_2 + DCGAN (32 px) "
           f"images up-sampled x2 by the SRGAN, {d.get('generation', {}).get('ratio', '?')} generated per real training image. "
           + (d.get("code", "") + "." if d.get("code") else ""), "",
           "| arm | macro ROC-AUC | accuracy | precision | sensitivity | specificity | F1 |", "|---|---|---|---|---|---|---|"]
    for arm in d["summary"]:
        runs = [d["runs"][f"{arm}-s{s}"] for s in seeds]
        cells = [_mean_sd([r["macro_roc_auc"] for r in runs])] + [_mean_sd([r["sample_based"][k]["value"] for r in runs])
                                                                 for k in ("accuracy", "precision", "sensitivity", "specificity", "f1")]
        out.append(f"| {arm} | " + " | ".join(cells) + " |")
    if d.get("sr_test"):
        q = d["sr_test"]
        out += ["", f"SRGAN x{q['scale']} (32 -> 64 px) on the test split: PSNR {q['sr_psnr']:.2f} dB vs bicubic {q['bicubic_psnr']:.2f} "
                f"(difference {ci(q['psnr_difference'], 2)}), SSIM {q['sr_ssim']:.4f} vs {q['bicubic_ssim']:.4f}."]
    if d.get("differences"):
        out += _difference_lines(d["differences"], "Paired differences (per label: ROC-AUC of the seed-averaged scores; sensitivity at each run's val threshold, "
                                                   "mean over seeds; patient-level CIs):")
    return out + [""]


def p2_wholebody() -> list[str]:
    d = _load("p2_wholebody", "summary")
    if not d:
        return []
    out = ["### P2's table on SYNTHETIC whole-body scans (`benchmarks/p2_wholebody.py`)", "", *_p2_table(d), *_p2_per_label(d)]
    for e in d.get("earlier", {}).values():  # tables made with other settings (patient count, size) stay beside the newest
        note = f" {e['note'][0].upper()}{e['note'][1:]}." if e.get("note") else ""  # what a reader must know about it, e.g. code changed since
        out += ["", f"Earlier, with other settings (`{e.get('last_written_by', {}).get('command') or e.get('command', '')}`):{note}", "", *_p2_table(e)]
    return out + [""]


def _arm_runs(d: dict, key: str) -> list[dict]:
    """The runs of one ``label-arm`` row (run keys are ``label-arm-sSEED``)."""
    return [r for k, r in d["runs"].items() if k.rsplit("-s", 1)[0] == key]


def _p2_per_label(d: dict) -> list[str]:
    """Per label, each arm: the test metrics at each run's val-chosen threshold, mean ± sd over seeds (each run's CIs are in the file)."""
    if not any("per_label" in r for r in d["runs"].values()):
        return []
    out = ["", "<details><summary>Per label (test, at each run's val threshold, mean ± sd over seeds; each run's patient-level CIs are in the results file)</summary>", "",
           "| model, augmentation | label | accuracy | precision | sensitivity | specificity | F1 |", "|---|---|---|---|---|---|---|"]
    for key in d["summary"]:
        runs = [r["per_label"] for r in _arm_runs(d, key) if "per_label" in r]
        for c in runs[0] if runs else []:
            cells = [[r[c][m]["value"] for r in runs if r[c][m]["value"] is not None] for m in ("accuracy", "precision", "recall", "specificity", "f1")]
            out.append(f"| {key} | {c} | " + " | ".join(_mean_sd(v) if v else "n/a" for v in cells) + " |")  # precision: undefined with no positive call
    return out + ["", "</details>"]


def _macro(aucs: list[float | None]) -> float:
    """Mean over the labels whose AUC is defined (a label without positives among the images has none)."""
    defined = [a for a in aucs if a is not None]
    return sum(defined) / len(defined) if defined else float("nan")


def _p2_table(d: dict) -> list[str]:
    out = [f"Device: {d['device']}. {d['data']}. {d['epochs']} epochs; GAN: {d['gan']['epochs']} epochs, ratio {d['gan']['ratio']}. "
           "Test split, sample-based metrics, mean ± sd over seeds (P2 reports its best at accuracy 0.7747, F1 0.7860 on private data); "
           "validation macro ROC-AUC (the selected epoch) is what a choice between settings may use.", "",
           "| model, augmentation | macro ROC-AUC | accuracy | precision | sensitivity | specificity | F1 | training wall (s, per run) | val macro ROC-AUC |",
           "|---|---|---|---|---|---|---|---|---|"]
    for key, m in d["summary"].items():
        runs = _arm_runs(d, key)
        macro = [_macro([v["value"] for v in r["per_label_roc_auc"].values()]) for r in runs]
        val = [_macro(list(r["val_per_label_roc_auc"].values())) for r in runs if r.get("val_per_label_roc_auc")]
        wall = [r["wall_seconds"] for r in runs if r.get("wall_seconds")]
        out.append(f"| {key} | {_mean_sd(macro)} | " + " | ".join(f"{m[k][0]:.3f} ± {m[k][1]:.3f}" for k in ("accuracy", "precision", "sensitivity", "specificity", "f1"))
                   + (f" | {sum(wall) / len(wall):.0f} |" if wall else " | |") + (f" {_mean_sd(val)} |" if len(val) == len(runs) else " n/a |"))
    if d.get("geo_gan_minus_geo"):
        out += _difference_lines(d["geo_gan_minus_geo"], "geo + GAN - geo (per-label ROC-AUC of the seed-averaged scores; sensitivity at each run's val threshold, "
                                                         "mean over seeds; patient-level CIs):")
    if d.get("geo_gan_minus_geo_steps"):  # the control: geo trained for as many optimiser steps as geo + GAN
        epochs = sorted(set(d.get("equal_steps_epochs", {}).values()))
        out += _difference_lines(d["geo_gan_minus_geo_steps"], f"geo + GAN - geo_steps (geo_steps: the geo arm trained {'/'.join(map(str, epochs))} epochs, "
                                                               "as many optimiser steps as geo + GAN; same patients and seeds; patient-level CIs):")
        out += _difference_lines(d["geo_steps_minus_geo"], "geo_steps - geo (what the extra steps alone bought):")
    if d.get("model_differences_geo"):
        out += _difference_lines(d["model_differences_geo"], "Models, geo arm (same test patients and seeds; per-label ROC-AUC of the seed-averaged scores; "
                                                             "sensitivity at each run's val threshold, mean over seeds; patient-level CIs):")
    return out
