"""scintix cv: every patient out of fold exactly once, selection inside the training folds, honest pooled summary."""

import csv
import json

import numpy as np
import pytest

from scintix.cli.__main__ import main
from scintix.training.crossval import compare_cv, paired_auc_difference, pooled_auc_ci

FAST = ["-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "train.batch_size=8", "-o", "train.channels_last=false", "-o", "train.progress=false",
        "-o", "train.tensorboard=false", "-o", "eval.n_bootstrap=50", "-o", "eval.figures=false", "-o", "data.view_filter=null", "-o", "data.views=null", "-o", "train.epochs=1"]


def _split(run_dir):
    with open(run_dir / "split.csv", newline="") as fh:
        return {r["path"]: (r["patient_id"], r["split"]) for r in csv.DictReader(fh)}


@pytest.mark.slow
def test_cv_folds_summary_resume_and_paired_comparison(tiny_manifest, tmp_path, capsys):
    cv = tmp_path / "cv"
    assert main(["cv", "--data", str(tiny_manifest), "--out", str(cv), "--folds", "2", "--inner-val", "0.3", *FAST]) == 0
    out = capsys.readouterr().out
    assert "pooled out-of-fold ROC-AUC" in out and "fold 1:" in out and "one training seed: `--seeds 0 1 2`" in out
    splits = [_split(cv / f"fold{f}") for f in range(2)]
    tested = {}
    for f, sp in enumerate(splits):
        by_patient = {}
        for path, (pid, part) in sp.items():
            by_patient.setdefault(pid, set()).add(part)
            if part == "test":
                tested.setdefault(pid, set()).add(f)
        assert all(len(parts) == 1 for parts in by_patient.values())  # a patient's images stay in one part of each run
        assert {"train", "val", "test"} == {p for parts in by_patient.values() for p in parts}
    assert set(tested) == {p for sp in splits for p, _ in sp.values()} and all(len(f) == 1 for f in tested.values())  # out of fold exactly once
    assert tested["P0"] == tested["P11"]  # exact duplicates (same pixels) are kept together
    labels = {row["patient_id"]: row["label"] for row in csv.DictReader(open(tiny_manifest))}
    assert all(any(labels[p] == "1" for p, f in tested.items() if f == {k}) for k in range(2))  # stratified: every fold holds a positive
    s = json.loads((cv / "cv_summary.json").read_text())
    fold_metrics = [json.loads((cv / f"fold{f}" / "eval" / "test" / "metrics.json").read_text()) for f in range(2)]
    aucs = [m["per_class"][s["positive_class"]]["roc_auc"]["value"] for m in fold_metrics]
    assert s["n"] == sum(m["n"] for m in fold_metrics) == 24 and s["patients"] == 12
    assert s["fold_auc_mean"] == pytest.approx(np.nanmean(aucs)) and [r["roc_auc"] for r in s["per_fold"]] == pytest.approx(aucs, nan_ok=True)
    oof = list(csv.DictReader(open(cv / "oof_predictions.csv")))
    assert len(oof) == 24 and {int(r["fold"]) for r in oof} == {0, 1}
    y = np.array([r["target"] == s["positive_class"] for r in oof])
    called = np.array([r["predicted"] == s["positive_class"] for r in oof])
    tp, fp, fn = (y & called).sum(), (~y & called).sum(), (y & ~called).sum()
    assert s["pooled_accuracy_at_fold_thresholds"]["value"] == pytest.approx((y == called).mean())  # P1's metrics, by hand
    assert s["pooled_f1_at_fold_thresholds"]["value"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert s["pooled_precision_at_fold_thresholds"]["value"] == pytest.approx(tp / (tp + fp)) if tp + fp else np.isnan(s["pooled_precision_at_fold_thresholds"]["value"])
    from scintix.runfolder import load_run

    ens = load_run(cv)  # the fold models, averaged: one model for new patients
    assert len(ens.model.members) == 2 and ens.thresholds["abnormal"] == pytest.approx(np.mean([load_run(cv / f"fold{f}").thresholds["abnormal"] for f in range(2)]))
    assert main(["report", str(cv)]) == 0  # the CV's own page: pooled metrics with CIs, folds, ROC curves, fold runs
    page = (cv / "report.html").read_text()
    assert f"{s['pooled_oof_auc']['value']:.3f} [{s['pooled_oof_auc']['ci_low']:.3f}" in page and "data:image/png;base64" in page
    assert "<td>1</td>" in page and "fold1 (no report: scintix report" in page and "one training seed" in page
    mtime = (cv / "fold0" / "checkpoints" / "best.pt").stat().st_mtime
    assert main(["cv", "--data", str(tiny_manifest), "--out", str(cv), "--folds", "2", "--inner-val", "0.3", *FAST]) == 0  # finished folds are not retrained
    assert (cv / "fold0" / "checkpoints" / "best.pt").stat().st_mtime == mtime
    assert main(["cv", "--data", str(tiny_manifest), "--out", str(cv), "--folds", "2", "--inner-val", "0.3", *FAST, "-o", "train.device=cpu",
                 "-o", "train.progress=true"]) == 0  # where it runs is not what it learns: still this CV
    assert (cv / "fold0" / "checkpoints" / "best.pt").stat().st_mtime == mtime
    capsys.readouterr()  # ...but a CV folder of other settings is not taken for this one's: refused, naming what differs
    assert main(["cv", "--data", str(tiny_manifest), "--out", str(cv), "--folds", "2", "--inner-val", "0.3", *FAST, "-o", "train.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "fold0: fold 0 was made with other settings (train.lr:" in err and "-> 0.5)" in err and "Traceback" not in err
    assert (cv / "fold0" / "checkpoints" / "best.pt").stat().st_mtime == mtime
    same = compare_cv(cv, cv)
    assert same["pooled_auc_difference"]["value"] == 0 and same["pooled_auc_difference"]["ci_low"] == 0 == same["pooled_auc_difference"]["ci_high"]
    # kept files alone: the folds, targets and patients rebuilt from the data score them as the CV folder does
    from scintix.config import load_config
    from scintix.training.cv_compare import export_oof, seed_ensemble_auc
    from scintix.training.cv_truth import cv_truth
    from scintix.training.oof import image_keys

    kept = export_oof(cv, tmp_path / "kept.csv")
    overrides = [v for v in FAST if v != "-o"]
    truth = cv_truth(load_config("quickstart", [*overrides, f"data.source={tiny_manifest}"]), 2, 0.3)
    assert truth == {k: {"fold": int(r["fold"]), "target": r["target"], "patient_id": r["patient_id"]} for k, r in zip(image_keys([r["path"] for r in oof]), oof)}
    flipped = tmp_path / "flipped.csv"  # another "recipe": every probability p becomes 1 - p
    flipped.write_text("\n".join([kept.read_text().splitlines()[0]] + [f"{f},{k},{1 - float(p):.6f}" for f, k, p in
                                                                       (line.split(",") for line in kept.read_text().splitlines()[1:])]) + "\n")
    alone, beside = compare_cv(kept, flipped, n_boot=50, truth=truth), compare_cv(cv, flipped, n_boot=50)
    assert {k: v for k, v in alone.items() if k not in ("a", "b")} == {k: v for k, v in beside.items() if k not in ("a", "b")}
    assert alone["pooled_auc_a"] == pytest.approx(s["pooled_oof_auc"]["value"]) and alone["pooled_auc_b"] == pytest.approx(1 - s["pooled_oof_auc"]["value"])
    ens = seed_ensemble_auc([kept, kept], n_boot=50, against=flipped, truth=truth)
    assert ens["value"] == pytest.approx(s["pooled_oof_auc"]["value"]) and ens["minus_against"]["value"] == pytest.approx(alone["pooled_auc_difference"]["value"])
    other = cv_truth(load_config("quickstart", [*overrides, f"data.source={tiny_manifest}", "data.split.seed=1"]), 2, 0.3)  # other folds
    with pytest.raises(ValueError, match="same images and folds"):
        compare_cv(kept, kept, truth=other)
    capsys.readouterr()
    assert main(["cv", "--compare", str(kept), str(kept), "--data", str(tiny_manifest), "--folds", "2", "--inner-val", "0.3", *FAST]) == 0
    assert f"A - B: {0:+.4f}" in capsys.readouterr().out
    assert main(["cv", "--compare", str(kept), str(kept)]) == 2  # no data: a one-line refusal
    assert "at least one side must be a CV folder" in capsys.readouterr().err
    # view fusion from kept files: each side joined with its own rebuilt truth, exactly as beside the CV folder
    from scintix.training.cv_compare import fuse_views

    alone, beside = fuse_views(kept, flipped, n_boot=50, truth_a=truth, truth_b=truth), fuse_views(cv, flipped, n_boot=50, truth_b=truth)
    assert {k: v for k, v in alone.items() if k not in ("a", "b")} == {k: v for k, v in beside.items() if k not in ("a", "b")}
    assert alone["a_auc"] == fuse_views(cv, cv, n_boot=50)["a_auc"] and alone["patients"] == len({r["patient_id"] for r in oof})
    with pytest.raises(ValueError, match="holds no labels or patients"):
        fuse_views(kept, cv)
    with pytest.raises(ValueError, match="same images and folds"):
        fuse_views(kept, cv, truth_a=other)
    capsys.readouterr()
    assert main(["cv", "--fuse-views", str(kept), str(kept), "--data", str(tiny_manifest), "--folds", "2", "--inner-val", "0.3", *FAST]) == 0
    assert "fused - A 0.0000 [0.0000, 0.0000]" in capsys.readouterr().out  # a view fused with itself is that view
    assert main(["cv", "--fuse-views", str(kept), str(kept), "--data", str(tiny_manifest), "--views", "ant", "post", "--folds", "2", "--inner-val", "0.3", *FAST]) == 2
    assert "another view" in capsys.readouterr().err  # this CV read both views: the anterior images alone are other images


@pytest.mark.slow
def test_cv_over_training_seeds_keeps_the_folds_and_compares_over_seeds(tiny_manifest, tmp_path, capsys):
    from scintix.config import load_config
    from scintix.runfolder import load_run

    cv = tmp_path / "cv"
    assert main(["cv", "--data", str(tiny_manifest), "--out", str(cv), "--folds", "2", "--inner-val", "0.3", "--seeds", "0", "1", *FAST]) == 0
    out = capsys.readouterr().out
    assert "seed 0: pooled out-of-fold ROC-AUC" in out and "seed 1:" in out and "over 2 training seeds" in out
    for f in range(2):  # the same folds (and inner validation splits) for every seed, each trained with its own seed
        assert (cv / "seed0" / f"fold{f}" / "folds.csv").read_text() == (cv / "seed1" / f"fold{f}" / "folds.csv").read_text()
        assert _split(cv / "seed0" / f"fold{f}") == _split(cv / "seed1" / f"fold{f}")
        assert [load_config(cv / f"seed{s}" / f"fold{f}" / "config.yaml").train.seed for s in (0, 1)] == [0, 1]
    oof = [list(csv.DictReader(open(cv / f"seed{s}" / "oof_predictions.csv"))) for s in (0, 1)]
    assert [r["path"] for r in oof[0]] == [r["path"] for r in oof[1]] and any(a["prob"] != b["prob"] for a, b in zip(*oof))  # other weights, same images
    per_seed = [json.loads((cv / f"seed{s}" / "cv_summary.json").read_text())["pooled_oof_auc"]["value"] for s in (0, 1)]
    summary = json.loads((cv / "cv_seeds.json").read_text())
    assert summary["pooled_oof_auc_mean"] == pytest.approx(np.mean(per_seed)) and summary["pooled_oof_auc_sd_over_seeds"] == pytest.approx(np.std(per_seed, ddof=1))
    from scintix.evaluation.metrics import roc_auc

    mean_prob = np.mean([[float(r["prob"]) for r in rows] for rows in oof], axis=0)  # same images, same order (checked above)
    truth = np.array([r["target"] == "abnormal" for r in oof[0]], float)
    assert summary["seed_ensemble_pooled_oof_auc"]["value"] == pytest.approx(roc_auc(truth, mean_prob)) and summary["seed_ensemble_pooled_oof_auc"]["seeds"] == 2
    both = compare_cv(cv, cv, n_boot=50)  # a seeds folder on each side: both seeds each
    assert both["runs_a"] == both["runs_b"] == 2 and both["pooled_auc_difference"]["value"] == 0 == both["pooled_auc_difference"]["ci_low"]
    one = compare_cv(cv / "seed0", cv, n_boot=50)
    assert one["runs_a"] == 1 and one["pooled_auc_difference"]["value"] == pytest.approx(per_seed[0] - np.mean(per_seed))
    assert len(load_run(cv).model.members) == 4  # every seed's fold models, averaged, for new patients
    assert main(["cv", "--export-oof", str(cv), str(tmp_path / "x.csv")]) == 2
    assert "holds one CV per training seed" in capsys.readouterr().err
    last = tmp_path / "cv-last"  # the no-selection variant, continued seed by seed
    assert main(["cv", "--out", str(last), "--continue-from", str(cv), "--seeds", "0", "1", "--folds", "2", "--inner-val", "0.3", *FAST]) == 0
    for s in (0, 1):
        cfg = load_config(last / f"seed{s}" / "fold1" / "config.yaml")
        assert (cfg.train.select_metric, cfg.train.seed) == ("last", s)
        assert (last / f"seed{s}" / "fold1" / "folds.csv").read_text() == (cv / f"seed{s}" / "fold1" / "folds.csv").read_text()


def test_pooled_and_paired_auc_cis():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 50)
    good = y + rng.normal(0, 0.5, 100)
    noise = rng.normal(0, 1, 100)
    pids = [f"P{i // 2}" for i in range(100)]
    ci = pooled_auc_ci(y, good, pids, n_boot=200)
    assert ci["ci_low"] <= ci["value"] <= ci["ci_high"] and ci["value"] > 0.85
    d = paired_auc_difference(y, good, noise, pids, n_boot=200)
    assert d["ci_low"] > 0 and d["share_a_better"] == 1.0
    zero = paired_auc_difference(y, good, good, pids, n_boot=50)
    assert zero["value"] == zero["ci_low"] == zero["ci_high"] == 0


def test_auc_difference_over_training_seeds():
    from scintix.evaluation.bootstrap import auc_difference_over_runs
    from scintix.evaluation.metrics import roc_auc

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 200)
    pids = [f"P{i // 2}" for i in range(400)]
    base, other = y + rng.normal(0, 0.6, 400), y + rng.normal(0, 0.8, 400)
    one = auc_difference_over_runs(y, [base], [other], pids, n_boot=300)
    ref = paired_auc_difference(y, base, other, pids, n_boot=300)
    assert {k: one[k] for k in ref} == pytest.approx(ref)  # one run per recipe: the patient bootstrap, same draws
    copies = auc_difference_over_runs(y, [base, base, base], [other, other], pids, n_boot=300)
    assert (copies["ci_low"], copies["ci_high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]))  # seeds that agree add nothing
    assert copies["runs_sd_a"] == 0 and copies["runs_sd_b"] == 0
    # seeds that disagree (one recipe's AUC ~0.97, ~0.85, ~0.72 by seed): the mean by hand, and a much wider interval
    seeds = [y + rng.normal(0, s, 400) for s in (0.3, 0.6, 1.0)]
    noisy = auc_difference_over_runs(y, seeds, [other], pids, n_boot=300)
    aucs = [roc_auc(y, p) for p in seeds]
    assert noisy["value"] == pytest.approx(np.mean(aucs) - roc_auc(y, other)) and noisy["runs_auc_a"] == pytest.approx(aucs)
    assert noisy["runs_sd_a"] == pytest.approx(np.std(aucs, ddof=1)) and noisy["runs_sd_b"] is None
    patients_only = paired_auc_difference(y, seeds[1], other, pids, n_boot=300)
    assert noisy["ci_high"] - noisy["ci_low"] > 1.5 * (patients_only["ci_high"] - patients_only["ci_low"])
    assert noisy["ci_low"] < noisy["value"] < noisy["ci_high"] and not noisy["runs_paired"]
    # as many runs on each side: paired by position (seed); a recipe that follows each seed closely differs little
    close = [p + rng.normal(0, 0.05, 400) for p in seeds]
    paired = auc_difference_over_runs(y, seeds, close, pids, n_boot=300)
    shuffled = auc_difference_over_runs(y, seeds, close[::-1], pids, n_boot=300)  # the same runs, seeds mismatched
    assert paired["runs_paired"] and paired["value"] == pytest.approx(shuffled["value"])
    assert paired["ci_high"] - paired["ci_low"] < (shuffled["ci_high"] - shuffled["ci_low"]) / 3


def _fake_cv(root, rows):
    d = root / "fold0" / "eval" / "test"
    d.mkdir(parents=True)
    with open(d / "predictions.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "patient_id", "target", "prob_normal", "prob_abnormal", "predicted"])
        for pid, target, p in rows:
            w.writerow([f"{root.name}/{pid}.png", pid, target, 1 - p, p, "abnormal" if p >= 0.5 else "normal"])
    return root


def test_two_view_late_fusion_by_hand(tmp_path):
    from scintix.evaluation.metrics import roc_auc
    from scintix.training.crossval import fuse_views

    ant = _fake_cv(tmp_path / "ant", [("P1", "abnormal", 0.9), ("P2", "normal", 0.2), ("P3", "normal", 0.6), ("P4", "normal", 0.1), ("P5", "normal", 0.3)])
    post = _fake_cv(tmp_path / "post", [("P1", "normal", 0.4), ("P2", "normal", 0.1), ("P3", "abnormal", 0.8), ("P4", "normal", 0.3), ("P6", "abnormal", 0.9)])
    r = fuse_views(ant, post, "mean", n_boot=200)
    assert r["patients"] == 4 and r["positive_patients"] == 2  # P5, P6 seen in one view only; truth = abnormal in either view (P1, P3)
    y, fused = [1, 0, 1, 0], [0.65, 0.15, 0.7, 0.2]
    assert r["fused_auc"]["value"] == pytest.approx(roc_auc(np.array(y), np.array(fused))) == 1.0
    assert r["a_auc"]["value"] == pytest.approx(roc_auc(np.array(y), np.array([0.9, 0.2, 0.6, 0.1])))
    assert r["fused_minus_b"]["value"] == pytest.approx(1.0 - roc_auc(np.array(y), np.array([0.4, 0.1, 0.8, 0.3])))
    assert fuse_views(ant, post, "max", n_boot=50)["fused_auc"]["value"] == pytest.approx(roc_auc(np.array(y), np.array([0.9, 0.2, 0.8, 0.3])))


def test_paired_comparison_against_an_exported_file_without_the_data(tmp_path, capsys):
    from scintix.training.crossval import export_oof

    rows_a = [("P1", "abnormal", 0.9), ("P2", "normal", 0.2), ("P3", "abnormal", 0.6), ("P4", "normal", 0.5), ("P5", "normal", 0.1)]
    rows_b = [("P1", "abnormal", 0.55), ("P2", "normal", 0.3), ("P3", "abnormal", 0.8), ("P4", "normal", 0.6), ("P5", "normal", 0.2)]
    a, b = _fake_cv(tmp_path / "machine1", rows_a), _fake_cv(tmp_path / "machine2", rows_b)  # same images under different roots
    kept = export_oof(b, tmp_path / "kept" / "b.csv")
    text = kept.read_text()
    assert text.splitlines()[0] == "fold,key,prob_abnormal" and len(text.splitlines()) == 6
    assert not any(s in text for s in ("P1", ".png", "machine", "normal,"))  # no file names, patients or labels
    by_dir, by_file = compare_cv(a, b, n_boot=100), compare_cv(a, kept, n_boot=100)
    assert by_file["pooled_auc_difference"] == by_dir["pooled_auc_difference"]
    assert by_file["pooled_auc_a"] == 1.0 and by_file["pooled_auc_b"] == pytest.approx(5 / 6)  # by hand: P1's 0.55 is below P4's 0.6
    back = compare_cv(kept, a, n_boot=100)  # either side may be the file
    assert back["pooled_auc_difference"]["value"] == pytest.approx(-by_dir["pooled_auc_difference"]["value"])
    with pytest.raises(ValueError, match="at least one side"):
        compare_cv(kept, kept)
    other = _fake_cv(tmp_path / "other", rows_a[:4])
    with pytest.raises(ValueError, match="same images and folds"):
        compare_cv(other, kept)
    assert main(["cv", "--export-oof", str(b), str(tmp_path / "cli.csv")]) == 0 and (tmp_path / "cli.csv").read_text() == text
    assert main(["cv", "--compare", str(a), str(tmp_path / "cli.csv")]) == 0
    assert f"A - B: {by_dir['pooled_auc_difference']['value']:+.4f}" in capsys.readouterr().out
    # a recipe's several training seeds on either side (folders or kept files, one per seed)
    b2 = _fake_cv(tmp_path / "machine3", [("P1", "abnormal", 0.7), ("P2", "normal", 0.3), ("P3", "abnormal", 0.8), ("P4", "normal", 0.2), ("P5", "normal", 0.25)])
    seeds = compare_cv(a, [b, kept, b2], n_boot=100)
    assert seeds["runs_a"] == 1 and seeds["runs_b"] == 3 and seeds["a"] == str(a) and seeds["b"] == [str(b), str(kept), str(b2)]
    assert seeds["pooled_auc_b"] == pytest.approx((5 / 6 + 5 / 6 + 1.0) / 3)  # b2 ranks every abnormal first
    assert seeds["pooled_auc_difference"]["value"] == pytest.approx(1.0 - seeds["pooled_auc_b"])
    assert seeds["pooled_auc_difference"]["runs_auc_b"] == pytest.approx([5 / 6, 5 / 6, 1.0])
    twice = compare_cv([a, a], b, n_boot=100)  # identical seeds: the one-seed comparison
    assert twice["pooled_auc_difference"]["value"] == by_dir["pooled_auc_difference"]["value"]
    assert twice["pooled_auc_difference"]["ci_low"] == by_dir["pooled_auc_difference"]["ci_low"]
    with pytest.raises(ValueError, match="same images and folds"):
        compare_cv(a, [b, other])
    assert main(["cv", "--compare", str(a), f"{b},{tmp_path / 'cli.csv'},{b2}"]) == 0
    out = capsys.readouterr().out
    assert "mean over seeds" in out and "0.8333, 0.8333, 1.0000" in out and "1 / 3 seeds" in out


def _continue_base(manifest) -> list[str]:
    return ["model.name=small_cnn", "data.image_size=[24,16]", "train.batch_size=8", "train.channels_last=false", "train.progress=false", "train.tensorboard=false",
            "eval.n_bootstrap=20", "eval.figures=false", "data.view_filter=null", "data.views=null", "train.epochs=3", f"data.source={manifest}"]


@pytest.mark.slow
def test_continuing_a_cv_without_selection_equals_training_it_from_scratch(tiny_manifest, tmp_path):
    from scintix.checkpoint import load_checkpoint
    from scintix.config import load_config
    from scintix.training.crossval import (
        continue_without_selection,
        cross_validate,
        oof_predictions,
    )

    base = _continue_base(tiny_manifest)
    cross_validate(load_config("p1-thoracic", [*base, "train.select_metric=last"]), tmp_path / "scratch", 2, 0.3)
    scratch, _ = oof_predictions(tmp_path / "scratch")
    # two references: one whose folds stopped early (they continue to epoch 3), one whose folds ran all 3 epochs (they ship as they are)
    for ref, patience, ran in (("early", 1, [2, 2]), ("full", 0, [3, 3])):
        cross_validate(load_config("p1-thoracic", [*base, f"train.early_stop_patience={patience}"]), tmp_path / ref, 2, 0.3)
        assert [len(list(csv.DictReader(open(tmp_path / ref / f"fold{f}" / "history.csv")))) for f in range(2)] == ran
        cont = tmp_path / f"cont-{ref}"
        if ref == "early":  # the CLI: copies the folds, then resumes them with their saved (select_metric: last) config
            assert main(["cv", "--recipe", "p1-thoracic", "--out", str(cont), "--continue-from", str(tmp_path / ref), "--folds", "2", "--inner-val", "0.3"]) == 0
        else:
            assert continue_without_selection(tmp_path / ref, cont) == [0, 1]
            cross_validate(load_config("p1-thoracic", base), cont, 2, 0.3, own_settings=False)
        rows, _ = oof_predictions(cont)
        assert [r["path"] for r in rows] == [r["path"] for r in scratch]
        assert [r["prob"] for r in rows] == pytest.approx([r["prob"] for r in scratch], abs=1e-5)
        for f in range(2):
            assert [r["epoch"] for r in csv.DictReader(open(cont / f"fold{f}" / "history.csv"))] == ["1", "2", "3"]
            sel = load_checkpoint(cont / f"fold{f}" / "checkpoints" / "best.pt")["selection"]
            assert sel["epoch"] == 3 and sel["criterion"] == "last"
        assert continue_without_selection(tmp_path / ref, cont) == []  # done folds are left alone
    # the fold models evaluated again (no training): identity TTA = the reference; shift TTA moves the probabilities; eval.* only
    from scintix.training.crossval import reevaluate_cv
    from scintix.training.cv_compare import compare_cv

    ref = tmp_path / "full"
    assert main(["cv", "--out", str(tmp_path / "re-id"), "--reevaluate-from", str(ref), "-o", "eval.tta=[identity]"]) == 0
    before, again = oof_predictions(ref)[0], oof_predictions(tmp_path / "re-id")[0]
    assert [r["path"] for r in again] == [r["path"] for r in before] and [r["prob"] for r in again] == pytest.approx([r["prob"] for r in before], abs=1e-6)
    shifted = reevaluate_cv(ref, tmp_path / "re-shift", ["eval.tta=[identity,shift]"])
    moved = oof_predictions(tmp_path / "re-shift")[0]
    assert max(abs(a["prob"] - b["prob"]) for a, b in zip(moved, before)) > 1e-4 and shifted["reevaluated_from"]["overrides"] == ["eval.tta=[identity,shift]"]
    assert (tmp_path / "re-shift" / "fold0" / "checkpoints" / "best.pt").read_bytes() == (ref / "fold0" / "checkpoints" / "best.pt").read_bytes()
    assert not (tmp_path / "re-shift" / "fold0" / "checkpoints" / "last.pt").exists()
    assert compare_cv(tmp_path / "re-shift", ref, n_boot=50)["pooled_auc_difference"]["value"] == pytest.approx(
        shifted["pooled_oof_auc"]["value"] - json.loads((ref / "cv_summary.json").read_text())["pooled_oof_auc"]["value"])
    with pytest.raises(ValueError, match=r"eval\.\* overrides only"):
        reevaluate_cv(ref, tmp_path / "re-train", ["train.epochs=5"])
    assert reevaluate_cv(ref, tmp_path / "re-shift", ["eval.tta=[identity,shift]"]) == shifted  # done: kept as it is
    with pytest.raises(ValueError, match=r"re-shift/fold0: the re-evaluation of .*fold0 was made with other settings \(eval\.tta: "):
        reevaluate_cv(ref, tmp_path / "re-shift", ["eval.tta=[identity]"])  # not summarised as the identity's


@pytest.mark.slow
def test_a_full_length_ema_fold_continued_without_selection_ships_its_final_average(tiny_manifest, tmp_path):
    """train.ema ships the weight average: a fold that ran its full length ships the final epoch's average (last.pt keeps it
    as that epoch validated it), exactly as the variant trained from scratch does."""
    from scintix.checkpoint import load_checkpoint
    from scintix.config import load_config
    from scintix.training.crossval import (
        continue_without_selection,
        cross_validate,
        oof_predictions,
    )

    base = [*_continue_base(tiny_manifest), "train.ema=0.9"]
    cross_validate(load_config("p1-thoracic", [*base, "train.select_metric=last"]), tmp_path / "scratch", 2, 0.3)
    cross_validate(load_config("p1-thoracic", [*base, "train.early_stop_patience=0"]), tmp_path / "ref", 2, 0.3)
    assert continue_without_selection(tmp_path / "ref", tmp_path / "cont") == [0, 1]
    cross_validate(load_config("p1-thoracic", base), tmp_path / "cont", 2, 0.3, own_settings=False)
    scratch, _ = oof_predictions(tmp_path / "scratch")
    rows, _ = oof_predictions(tmp_path / "cont")
    assert [r["prob"] for r in rows] == pytest.approx([r["prob"] for r in scratch], abs=1e-5)
    sel = load_checkpoint(tmp_path / "cont" / "fold0" / "checkpoints" / "best.pt")["selection"]
    assert sel["epoch"] == 3 and sel["weights"] == "EMA, decay 0.9"
