"""scintix cv with several labels or classes: each label pooled, one-vs-rest per class, per-label and macro comparisons."""

import csv
import json

import numpy as np
import pytest
from test_crossval import FAST

from scintix.cli.__main__ import main
from scintix.training.crossval import compare_cv, paired_auc_difference


@pytest.mark.slow
def test_a_multilabel_cv_pools_each_label(tmp_path, multilabel_manifest, capsys):
    """P2-style labels: each label's pooled out-of-fold AUC (patient CI) and the folds' macro AUCs; several training
    seeds (per label and macro); view fusion, which pools one positive class, refuses in one line."""
    from scintix.evaluation.metrics import roc_auc

    args = ["--data", str(multilabel_manifest), "--folds", "2", "--inner-val", "0.3", *FAST, "-o", "data.task=multilabel", "-o", "data.classes=[metastasis,arthritis,normal]"]
    assert main(["cv", "--out", str(tmp_path / "cv"), *args]) == 0
    out = capsys.readouterr().out
    assert "(multilabel)" in out and "metastasis: pooled out-of-fold ROC-AUC" in out and "macro mean of the pooled ROC-AUCs" in out
    s = json.loads((tmp_path / "cv" / "cv_summary.json").read_text())
    oof = list(csv.DictReader(open(tmp_path / "cv" / "oof_predictions.csv")))
    assert sorted(r["patient_id"] for r in oof) == sorted(f"P{p}" for p in range(24))  # every image out of fold once
    assert set(s["per_class"]) == {"metastasis", "arthritis", "normal"}
    for c, v in s["per_class"].items():
        y = [c in r["target"].split(";") for r in oof]
        assert v["positives"] == sum(y) and v["pooled_oof_auc"]["value"] == pytest.approx(roc_auc(np.array(y, float), np.array([float(r[f"prob_{c}"]) for r in oof])))
    assert s["pooled_oof_auc_macro"] == pytest.approx(np.mean([v["pooled_oof_auc"]["value"] for v in s["per_class"].values()]))
    assert [f["fold"] for f in s["per_fold"]] == [0, 1] and all(set(f["per_class_roc_auc"]) <= set(s["per_class"]) for f in s["per_fold"])
    assert main(["report", str(tmp_path / "cv")]) == 0
    page = (tmp_path / "cv" / "report.html").read_text()
    assert "Pooled out of fold, per class (multilabel)" in page and f"{s['per_class']['arthritis']['pooled_oof_auc']['value']:.3f}" in page
    assert main(["cv", "--fuse-views", str(tmp_path / "cv"), str(tmp_path / "cv")]) == 2  # view fusion pools one positive class
    assert "a multilabel CV; view fusion pools one positive class" in capsys.readouterr().err
    import shutil

    shutil.copytree(tmp_path / "cv", tmp_path / "seeds" / "seed0")  # seed 0 is the CV above (finished folds are kept): only seed 1 trains
    assert main(["cv", "--out", str(tmp_path / "seeds"), "--seeds", "0", "1", *args]) == 0
    assert "pooled macro" in capsys.readouterr().out
    cs = json.loads((tmp_path / "seeds" / "cv_seeds.json").read_text())
    assert cs["task"] == "multilabel" and cs["per_seed"]["0"]["pooled_oof_auc_macro"] == pytest.approx(s["pooled_oof_auc_macro"])
    seed1 = list(csv.DictReader(open(tmp_path / "seeds" / "seed1" / "oof_predictions.csv")))
    first, second = ({r["path"]: r for r in rows} for rows in (oof, seed1))
    for c, v in cs["seed_ensemble_pooled_oof_auc"]["per_class"].items():  # the seeds' mean probability, by hand
        y = np.array([c in first[k]["target"].split(";") for k in first], float)
        mean = np.array([(float(first[k][f"prob_{c}"]) + float(second[k][f"prob_{c}"])) / 2 for k in first])
        assert v["value"] == pytest.approx(roc_auc(y, mean))


def test_a_multiclass_cv_summary_is_one_vs_rest_per_class(tmp_path):
    from scintix.evaluation.metrics import roc_auc
    from scintix.training.crossval import summarize_cv

    classes = ["normal", "benign", "metastasis"]
    rng = np.random.default_rng(3)
    for fold in range(2):
        d = tmp_path / "cv" / f"fold{fold}"
        (d / "eval" / "test").mkdir(parents=True)
        (d / "config.yaml").write_text("data:\n  task: multiclass\n")
        with open(d / "eval" / "test" / "predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "patient_id", "target"] + [f"prob_{c}" for c in classes] + ["predicted"])
            for i in range(9):
                p = rng.dirichlet([1, 1, 1])
                w.writerow([f"f{fold}_{i}.png", f"P{fold}{i}", classes[i % 3], *p, classes[int(np.argmax(p))]])
        (d / "eval" / "test" / "metrics.json").write_text(json.dumps({"n": 9, "patients": 9, "per_class": {c: {"roc_auc": {"value": 0.5 + 0.1 * k}} for k, c in enumerate(classes)}}))
    s = summarize_cv(tmp_path / "cv", n_boot=50)
    rows = list(csv.DictReader(open(tmp_path / "cv" / "oof_predictions.csv")))
    assert s["task"] == "multiclass" and s["classes"] == classes and len(rows) == 18
    for c in classes:
        y = np.array([r["target"] == c for r in rows], float)
        called = np.array([r["predicted"] == c for r in rows], float)
        assert s["per_class"][c]["pooled_oof_auc"]["value"] == pytest.approx(roc_auc(y, np.array([float(r[f"prob_{c}"]) for r in rows])))
        assert s["per_class"][c]["pooled_sensitivity_at_fold_thresholds"]["value"] == pytest.approx((called * y).sum() / y.sum())
    assert s["per_fold"][0]["roc_auc"] == pytest.approx(0.6) and s["fold_auc_sd"] == 0.0


def _cv_from_predictions(folder, probs, targets, classes, task="multilabel"):
    """A finished CV folder without training: two folds, each with its test predictions (patients P0..P<n-1>)."""
    n = len(targets)
    for fold in range(2):
        d = folder / f"fold{fold}"
        (d / "eval" / "test").mkdir(parents=True)
        (d / "config.yaml").write_text(f"data:\n  task: {task}\n")
        with open(d / "eval" / "test" / "predictions.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "patient_id", "target"] + [f"prob_{c}" for c in classes] + ["predicted"])
            for i in range(fold, n, 2):
                w.writerow([f"/data/img{i}.png", f"P{i}", targets[i], *probs[i], ""])
    return folder


def test_multilabel_cvs_compare_per_label_and_macro_also_over_seeds_and_from_an_export(tmp_path, capsys):
    from scintix.evaluation.metrics import roc_auc
    from scintix.training.cv_compare import export_oof, seed_ensemble_auc

    classes = ["metastasis", "arthritis", "normal"]
    rng = np.random.default_rng(0)
    n = 40
    truth = rng.random((n, 3)) < [0.4, 0.3, 0.0]  # nobody is "normal": that label has no AUC
    targets = [";".join(c for c, t in zip(classes, row) if t) for row in truth]
    noisy = [np.clip(truth + rng.normal(0, s, truth.shape), 0, 1) for s in (0.3, 0.6, 0.35, 0.7)]  # A seed 0, B seed 0, A seed 1, B seed 1
    a0, b0, a1, b1 = (_cv_from_predictions(tmp_path / name, p, targets, classes) for name, p in zip(("a0", "b0", "a1", "b1"), noisy))
    res = compare_cv(a0, b0, n_boot=200)
    assert res["task"] == "multilabel" and res["classes"] == ["metastasis", "arthritis"] and res["classes_without_auc"] == ["normal"]
    by_hand = {}
    for k, c in enumerate(classes[:2]):
        y = truth[:, k].astype(float)
        r = res["per_class"][c]
        by_hand[c] = roc_auc(y, noisy[0][:, k]) - roc_auc(y, noisy[1][:, k])
        assert r["positives"] == int(y.sum()) and r["pooled_auc_difference"]["value"] == pytest.approx(by_hand[c])
        assert r["pooled_auc_difference"] == pytest.approx(paired_auc_difference(y, noisy[0][:, k], noisy[1][:, k], [f"P{i}" for i in range(n)], 200), nan_ok=True)
    macro = res["pooled_auc_difference"]
    assert macro["value"] == pytest.approx(np.mean(list(by_hand.values()))) and macro["ci_low"] < macro["value"] < macro["ci_high"]
    assert res["pooled_auc_a"] - res["pooled_auc_b"] == pytest.approx(macro["value"]) and macro["value"] > 0  # less noise wins
    same = compare_cv(a0, a0, n_boot=50)
    assert same["pooled_auc_difference"]["value"] == 0 and same["pooled_auc_difference"]["ci_low"] == same["pooled_auc_difference"]["ci_high"] == 0
    kept = export_oof(b0, tmp_path / "kept" / "b0.csv")  # predictions without data: every label's column
    assert open(kept).readline().strip() == "fold,key,prob_metastasis,prob_arthritis,prob_normal"
    from_file = compare_cv(a0, kept, n_boot=200)["pooled_auc_difference"]
    assert [from_file[k] for k in ("value", "ci_low", "ci_high")] == pytest.approx([macro[k] for k in ("value", "ci_low", "ci_high")], abs=1e-6)
    seeds = compare_cv([a0, a1], [b0, b1], n_boot=200)  # over training seeds: per run, the macro AUC
    runs_a = [np.mean([roc_auc(truth[:, k].astype(float), p[:, k]) for k in range(2)]) for p in (noisy[0], noisy[2])]
    assert seeds["runs_a"] == 2 and seeds["pooled_auc_difference"]["runs_auc_a"] == pytest.approx(runs_a)
    assert seeds["per_class"]["arthritis"]["pooled_auc_difference"]["runs_auc_b"] == pytest.approx([roc_auc(truth[:, 1].astype(float), p[:, 1]) for p in (noisy[1], noisy[3])])
    ens = seed_ensemble_auc([a0, a1], n_boot=50)
    assert ens["per_class"]["metastasis"]["value"] == pytest.approx(roc_auc(truth[:, 0].astype(float), (noisy[0][:, 0] + noisy[2][:, 0]) / 2))
    assert ens["value"] == pytest.approx(np.mean([v["value"] for v in ens["per_class"].values()])) and set(ens["per_class"]) == {"metastasis", "arthritis"}
    vs = seed_ensemble_auc([a0, kept_a1 := export_oof(a1, tmp_path / "kept" / "a1.csv")], n_boot=50, against=kept)  # the ensemble minus B's seed 0, paired
    pids = [f"P{i}" for i in range(n)]
    for k, c in enumerate(classes[:2]):
        y, mean = truth[:, k].astype(float), (noisy[0][:, k] + noisy[2][:, k]) / 2
        ref = paired_auc_difference(y, mean, noisy[1][:, k], pids, 50)
        assert {key: vs["minus_against"]["per_class"][c][key] for key in ref} == pytest.approx(ref, abs=1e-6)
        assert vs["minus_against"]["per_class"][c]["auc_against"] == pytest.approx(roc_auc(y, noisy[1][:, k]), abs=1e-6)
    assert vs["minus_against"]["value"] == pytest.approx(np.mean([d["value"] for d in vs["minus_against"]["per_class"].values()]))
    assert vs["minus_against"]["against"] == str(kept) and vs["value"] == pytest.approx(ens["value"], abs=1e-6) and kept_a1.is_file()
    one = _cv_from_predictions(tmp_path / "bin1", [[p] for p in noisy[2][:, 0]], ["metastasis" if t else "other" for t in truth[:, 0]], ["metastasis"], task="binary")
    bin0 = _cv_from_predictions(tmp_path / "bin0", [[p] for p in noisy[0][:, 0]], ["metastasis" if t else "other" for t in truth[:, 0]], ["metastasis"], task="binary")
    pair = seed_ensemble_auc([bin0, one], n_boot=50, against=bin0)["minus_against"]  # binary: the difference itself, with its CI
    y = truth[:, 0].astype(float)
    assert pair["value"] == pytest.approx(roc_auc(y, (noisy[0][:, 0] + noisy[2][:, 0]) / 2) - roc_auc(y, noisy[0][:, 0]))
    assert pair["ci_low"] <= pair["value"] <= pair["ci_high"]
    both = seed_ensemble_auc([bin0, one], n_boot=50, against=[one, bin0])["minus_against"]  # an ensemble against itself, members reordered
    assert both["value"] == pytest.approx(0) and both["members_against"] == 2
    assert main(["cv", "--compare", f"{bin0},{one}", str(bin0), "--ensemble"]) == 0
    out = capsys.readouterr().out
    full = seed_ensemble_auc([bin0, one], against=bin0)["minus_against"]  # the command line's 1000 replicates
    assert f"A - B: {full['value']:+.4f} [{full['ci_low']:+.4f}, {full['ci_high']:+.4f}]" in out and "averaged per image" in out
    binary = _cv_from_predictions(tmp_path / "bin", [[p] for p in noisy[0][:, 0]], ["metastasis" if t else "other" for t in truth[:, 0]], ["metastasis"], task="binary")
    with pytest.raises(ValueError, match="name different classes"):
        compare_cv(a0, binary)
    uneven = compare_cv(b0, [a0, a1], n_boot=50)  # one seed against two: each side's runs drawn on their own
    assert (uneven["runs_a"], uneven["runs_b"]) == (1, 2) and uneven["pooled_auc_difference"]["runs_paired"] is False
    assert main(["cv", "--compare", str(a0), str(b0)]) == 0
    out = capsys.readouterr().out
    assert "macro mean of the classes' pooled out-of-fold ROC-AUCs (metastasis, arthritis)" in out and f"A - B: {macro['value']:+.4f}" in out
    assert f"arthritis ({int(truth[:, 1].sum())} positive)" in out and "not compared (no positive or no negative image out of fold): normal" in out


def test_fold_sd_is_the_sample_sd_of_the_defined_folds_and_undefined_below_two():
    from scintix.training.oof import fold_sd

    assert fold_sd([0.9, 0.95, 1.0]) == pytest.approx(0.05)  # ddof=1: sqrt(((-.05)^2 + 0 + .05^2) / 2)
    assert fold_sd([0.9, float("nan"), 1.0]) == pytest.approx(np.std([0.9, 1.0], ddof=1))  # an undefined fold is left out
    assert np.isnan(fold_sd([0.9, float("nan")])) and np.isnan(fold_sd([float("nan")] * 3)) and np.isnan(fold_sd([]))
