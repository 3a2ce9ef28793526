"""scintix cv for segmenters (nnU-Net's protocol): pooled out-of-fold Dice, paired per-scan comparisons, two-stage CV
(--init-from), report conditions pooled over folds, the CV's report page."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from scintix.cli.__main__ import main


@pytest.mark.slow
def test_a_segmentation_cv_pools_per_scan_dice_and_compares_paired(tmp_path, capsys):
    """nnU-Net's protocol for a segmenter: every scan out of fold once, cut at its fold's own threshold; pooled Dice by
    hand from the per-image rows; a CV against itself differs by exactly 0; probability-only paths refuse in one line."""
    sim, cv = tmp_path / "sim", tmp_path / "cv"
    assert main(["simulate", str(sim), "--n", "10", "--seed", "3", "--prevalence", "metastasis=0.7", "arthritis=0"]) == 0
    args = ["--recipe", "p4-unet", "--data", str(sim), "--folds", "2", "--inner-val", "0.3", "-o", "train.epochs=1", "-o", "data.image_size=[64,32]",
            "-o", "eval.n_bootstrap=20", "-o", "train.batch_size=4", "-o", "train.progress=false", "-o", "train.tensorboard=false", "-o", "eval.figures=false"]
    capsys.readouterr()
    assert main(["cv", "--out", str(cv), *args]) == 0
    out = capsys.readouterr().out
    assert "(segmentation)" in out and "lesion: pooled out-of-fold Dice" in out and "cut at its own validation threshold" in out and "oof_per_image.csv)" in out
    s = json.loads((cv / "cv_summary.json").read_text())
    rows = list(csv.DictReader(open(cv / "oof_per_image.csv")))
    assert s["task"] == "segmentation" and s["synthetic"] is True and s["classes"] == ["lesion"]
    assert sorted(r["path"] for r in rows) == sorted({r["path"] for r in rows}) and len(rows) == s["n"] == 20  # each scan once
    assert {r["fold"] for r in rows} == {"0", "1"} and len({r["patient_id"] for r in rows}) == s["patients"] == 10
    dice = [float(r["dice"]) for r in rows if r["dice"] not in ("", "nan")]
    assert s["per_class"]["lesion"]["dice"]["value"] == pytest.approx(np.mean(dice)) and s["per_class"]["lesion"]["images_with_lesion"] == len(dice)
    folds = [json.loads((cv / f"fold{f}" / "eval" / "test" / "metrics.json").read_text())["per_class"]["lesion"]["dice"]["value"] for f in range(2)]
    assert [f["dice"]["lesion"] for f in s["per_fold"]] == pytest.approx(folds) and s["fold_dice_mean"] == pytest.approx(np.mean(folds))
    truth = np.array([float(r["truth_pixels"]) for r in rows])
    pred = np.array([float(r["pred_pixels"]) for r in rows])
    tp = np.array([float(r["dice"]) * (t + p) / 2 if t > 0 else 0.0 for r, t, p in zip(rows, truth, pred)])
    assert s["per_class"]["lesion"]["global_dice"]["value"] == pytest.approx(2 * tp.sum() / (truth + pred).sum())
    assert main(["cv", "--compare", str(cv), str(cv)]) == 0
    out = capsys.readouterr().out
    assert f"lesion ({len(dice)} scans with a lesion)" in out and "A - B: 0.0000 [0.0000, 0.0000]" in out
    assert main(["cv", "--export-oof", str(cv), str(tmp_path / "x.csv")]) == 0  # per-scan Dice kept without the data
    assert "per-scan Dice" in capsys.readouterr().out and len(list(csv.DictReader(open(tmp_path / "x.csv")))) == len(dice)
    assert main(["cv", "--compare", str(tmp_path / "x.csv"), str(cv)]) == 0  # the file keeps 6 decimals: a difference of +-0.0000
    assert re.search(r"A - B: -?0\.0000 \[-?0\.0000, -?0\.0000\]", capsys.readouterr().out)
    mtime = (cv / "fold0" / "checkpoints" / "best.pt").stat().st_mtime
    assert main(["cv", "--out", str(cv), *args]) == 0 and (cv / "fold0" / "checkpoints" / "best.pt").stat().st_mtime == mtime  # finished folds are kept
    capsys.readouterr()
    # a second stage that stays out of fold: each fold starts from the same fold of the first CV (lr ~0: it stays there)
    assert main(["cv", "--out", str(tmp_path / "stage2"), "--init-from", str(cv), *args, "-o", "train.lr=1e-12", "-o", "train.weight_decay=0"]) == 0
    from scintix.checkpoint import load_checkpoint

    def conv(run):
        state = load_checkpoint(run / "checkpoints" / "best.pt")["model"]
        return next(v for k, v in state.items() if v.ndim == 4)

    for f in range(2):
        assert torch.allclose(conv(tmp_path / "stage2" / f"fold{f}"), conv(cv / f"fold{f}"), atol=1e-6)
    assert not torch.allclose(conv(cv / "fold0"), conv(cv / "fold1"), atol=1e-6)  # the folds' models differ: each started from its own
    assert main(["cv", "--out", str(tmp_path / "other"), "--init-from", str(cv), *args, "-o", "data.split.seed=7"]) == 2
    assert "its fold models saw other patients' folds" in capsys.readouterr().err and not (tmp_path / "other" / "fold0").exists()
    assert main(["report", str(cv)]) == 0
    page = (cv / "report.html").read_text()
    assert "SYNTHETIC DATA" in page and f"lesion ({len(dice)} with a lesion" in page and "fold Dice mean" in page
    one = sorted((sim / "images").glob("*.png"))[0]  # the fold models, averaged, segment a new scan
    assert main(["predict", str(cv), str(one), "--out", str(tmp_path / "pred.csv")]) == 0
    pred = next(csv.DictReader(open(tmp_path / "pred.csv")))
    assert pred["error"] == "" and Path(pred["mask_png"]).is_file()


def test_segmentation_cvs_compare_scan_by_scan_also_over_seeds(tmp_path):
    from scintix.training.cv_compare import compare_cv

    rng = np.random.default_rng(1)
    n = 30
    truth = np.where(rng.random(n) < 0.7, rng.integers(20, 200, n), 0)
    dice = {name: np.where(truth > 0, np.clip(rng.normal(mu, 0.1, n), 0, 1), np.nan) for name, mu in (("a0", 0.7), ("a1", 0.72), ("b0", 0.6), ("b1", 0.62))}
    for name, d in dice.items():
        for fold in range(2):
            f = tmp_path / name / f"fold{fold}"
            (f / "eval" / "test").mkdir(parents=True)
            (f / "config.yaml").write_text("data:\n  task: segmentation\n")
            with open(f / "eval" / "test" / "per_image.csv", "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["path", "patient_id", "class", "dice", "truth_pixels", "pred_pixels"])
                for i in range(fold, n, 2):
                    w.writerow([f"/d/s{i}.png", f"P{i // 2}", "lesion", "" if np.isnan(d[i]) else d[i], truth[i], truth[i]])
    one = compare_cv(tmp_path / "a0", tmp_path / "b0", n_boot=200)["per_class"]["lesion"]
    lesion = truth > 0
    assert one["images_with_lesion"] == lesion.sum() and one["dice_difference"]["value"] == pytest.approx(np.mean(dice["a0"][lesion] - dice["b0"][lesion]))
    assert one["dice_difference"]["ci_low"] < one["dice_difference"]["value"] < one["dice_difference"]["ci_high"]
    by_fold = [np.mean(dice["a0"][lesion & (np.arange(n) % 2 == f)]) - np.mean(dice["b0"][lesion & (np.arange(n) % 2 == f)]) for f in range(2)]
    assert one["per_fold_difference"] == pytest.approx(by_fold)
    seeds = compare_cv([tmp_path / "a0", tmp_path / "a1"], [tmp_path / "b0", tmp_path / "b1"], n_boot=100)
    r = seeds["per_class"]["lesion"]
    assert seeds["runs_a"] == 2 and r["dice_a"] == pytest.approx(np.mean((dice["a0"][lesion] + dice["a1"][lesion]) / 2))
    assert r["runs_dice_b"] == pytest.approx([np.mean(dice["b0"][lesion]), np.mean(dice["b1"][lesion])])
    assert r["dice_difference"]["runs_paired"] and "two-level" in r["dice_difference"]["ci"]  # the seeds are resampled too, paired by position
    with pytest.raises(ValueError, match="same images, classes and folds"):
        compare_cv(tmp_path / "a0", _subset(tmp_path / "a0", tmp_path / "fewer"))
    # kept without the data: the scans with a lesion, hashed; pairing against the file = pairing against the folder
    from scintix.training.cv_compare import export_oof

    kept = export_oof(tmp_path / "b0", tmp_path / "b0.csv")
    rows = list(csv.DictReader(open(kept)))
    assert list(rows[0]) == ["fold", "key", "class", "dice"] and len(rows) == lesion.sum() and "s1.png" not in kept.read_text() and "P" not in kept.read_text()
    from_file = compare_cv(tmp_path / "a0", kept, n_boot=200)["per_class"]["lesion"]
    assert from_file["dice_difference"] == pytest.approx(one["dice_difference"], abs=1e-6) and from_file["per_fold_difference"] == pytest.approx(by_fold, abs=1e-6)
    assert compare_cv([kept, tmp_path / "b1"], [tmp_path / "a0", tmp_path / "a1"], n_boot=50)["runs_a"] == 2  # a file among a recipe's seeds
    short = tmp_path / "short.csv"
    short.write_text("".join(open(kept).readlines()[:-1]))  # one scan with a lesion fewer
    with pytest.raises(ValueError, match="same images, classes and folds"):
        compare_cv(tmp_path / "a0", short)
    with pytest.raises(ValueError, match="at least one side must be a CV folder"):
        compare_cv(kept, kept)
    (tmp_path / "cls" / "fold0").mkdir(parents=True)
    (tmp_path / "cls" / "fold0" / "config.yaml").write_text("data:\n  task: binary\n")
    with pytest.raises(ValueError, match="a binary CV; the other side is a segmentation CV"):
        compare_cv(tmp_path / "cls", tmp_path / "a0")


def _subset(src, dst):
    """A copy of a segmentation CV folder with its last out-of-fold row dropped."""
    import shutil

    shutil.copytree(src, dst)
    f = dst / "fold1" / "eval" / "test" / "per_image.csv"
    f.write_text("".join(open(f).readlines()[:-1]))
    return dst


def test_a_segmentation_cv_summary_survives_a_fold_without_lesions(tmp_path):
    """A small CV can leave a fold with no lesion scan (its Dice is undefined, stored as null): the pooled numbers still
    come from every scan, and the fold mean from the folds that have a Dice."""
    from scintix.training.crossval import summarize_cv

    for fold, (dices, truth) in enumerate((([0.5, 0.7, None], [40, 60, 0]), ([None, None], [0, 0]))):
        d = tmp_path / "cv" / f"fold{fold}"
        (d / "eval" / "test").mkdir(parents=True)
        (d / "config.yaml").write_text("data:\n  task: segmentation\n")
        with open(d / "eval" / "test" / "per_image.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "patient_id", "class", "dice", "truth_pixels", "pred_pixels", "true_lesions", "detected_lesions", "false_positive_scan"])
            for i, (dv, t) in enumerate(zip(dices, truth)):
                w.writerow([f"/d/f{fold}_{i}.png", f"P{fold}{i}", "lesion", "" if dv is None else dv, t, 50 if t else 10, 1 if t else 0, 1 if t else 0, "" if t else 1])
        value = None if all(v is None for v in dices) else float(np.mean([v for v in dices if v is not None]))
        (d / "eval" / "test" / "metrics.json").write_text(json.dumps({"n": len(dices), "patients": len(dices), "per_class": {"lesion": {"dice": {"value": value}}}}))
        with open(d / "eval" / "test" / "text_conditions.csv", "w", newline="") as fh:  # a report-guided model's conditions
            w = csv.writer(fh)
            w.writerow(["path", "patient_id", "dice_report", "dice_no_report", "dice_other_patient_report"])
            for i, (dv, t) in enumerate(zip(dices, truth)):
                w.writerow([f"/d/f{fold}_{i}.png", f"P{fold}{i}", "" if dv is None else dv, "" if dv is None else dv - 0.1, "" if dv is None else dv - 0.3])
    s = summarize_cv(tmp_path / "cv", n_boot=50)
    assert s["per_class"]["lesion"]["dice"]["value"] == pytest.approx(0.6) and s["per_class"]["lesion"]["images_with_lesion"] == 2
    tc = s["text_conditions"]  # pooled over folds: each condition's mean over lesion scans, paired differences
    assert tc["dice"]["no_report"]["value"] == pytest.approx(0.5) and tc["differences"]["report - other_patient_report"]["value"] == pytest.approx(0.3)
    assert s["fold_dice_mean"] == pytest.approx(0.6) and np.isnan(s["per_fold"][1]["dice"]["lesion"])
    assert np.isnan(s["fold_dice_sd"])  # one defined fold says nothing about the scatter: undefined, not 0.0
    assert "NaN" not in (tmp_path / "cv" / "cv_summary.json").read_text()  # strict JSON: an undefined value is null, as in metrics.json
    assert json.loads((tmp_path / "cv" / "cv_summary.json").read_text())["per_fold"][1]["dice"]["lesion"] is None
    assert json.loads((tmp_path / "cv" / "cv_summary.json").read_text())["fold_dice_sd"] is None
    assert s["per_class"]["lesion"]["false_positive_scan_rate"]["value"] == pytest.approx(1.0) and s["per_class"]["lesion"]["lesion_free_images"] == 3
