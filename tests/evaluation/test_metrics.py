import math

import numpy as np
import pytest

from scintix.evaluation.bootstrap import bootstrap_ci
from scintix.evaluation.metrics import (
    binary_metrics,
    confusion_counts,
    metrics_from_counts,
    pr_auc,
    roc_auc,
)
from scintix.evaluation.threshold import choose_threshold

Y = np.array([1, 1, 1, 0, 0])
S = np.array([0.9, 0.6, 0.3, 0.4, 0.1])


def test_counts_and_metrics_by_hand():
    # threshold 0.5: predicted positive = [1, 1, 0, 0, 0] -> tp 2, fp 0, fn 1, tn 2
    assert confusion_counts(Y, S >= 0.5).tolist() == [2, 0, 1, 2]
    m = binary_metrics(Y, S, 0.5)
    assert m["accuracy"] == pytest.approx(4 / 5)
    assert m["precision"] == pytest.approx(1.0)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(1.0)
    assert m["f1"] == pytest.approx(0.8)
    assert m["balanced_accuracy"] == pytest.approx((2 / 3 + 1) / 2)
    # AUC: positive-negative pairs ranked right: (0.9,.4)(0.9,.1)(0.6,.4)(0.6,.1)(0.3,.1) = 5 of 6
    assert m["roc_auc"] == pytest.approx(5 / 6)
    # AP: ranks 0.9(P) 0.6(P) 0.4(N) 0.3(P): precision at each positive 1, 1, 3/4 -> mean 11/12
    assert m["pr_auc"] == pytest.approx(11 / 12)


def test_one_class_edge_cases_are_nan_not_zero():
    only_neg = binary_metrics(np.zeros(4, int), np.array([0.1, 0.2, 0.7, 0.3]), 0.5)
    assert math.isnan(only_neg["roc_auc"]) and math.isnan(only_neg["pr_auc"]) and math.isnan(only_neg["recall"])
    assert only_neg["specificity"] == pytest.approx(0.75) and math.isnan(only_neg["balanced_accuracy"])
    only_pos = binary_metrics(np.ones(3, int), np.array([0.9, 0.8, 0.2]), 0.5)
    assert math.isnan(only_pos["roc_auc"]) and math.isnan(only_pos["specificity"])
    assert only_pos["recall"] == pytest.approx(2 / 3) and only_pos["pr_auc"] == pytest.approx(1.0)
    nothing_predicted = binary_metrics(Y, S, 0.95)
    assert math.isnan(nothing_predicted["precision"]) and nothing_predicted["recall"] == 0.0


def test_vectorised_counts_match_loop():
    c = np.array([[2, 0, 1, 2], [0, 0, 0, 0]], float)
    m = metrics_from_counts(c)
    assert m["accuracy"][0] == pytest.approx(0.8) and math.isnan(m["accuracy"][1])


def test_weighted_auc_equals_auc_on_repeated_rows():
    w = np.array([2, 1, 0, 1, 3])
    rep = np.repeat(np.arange(5), w)
    assert roc_auc(Y, S, w) == pytest.approx(roc_auc(Y[rep], S[rep]))
    assert pr_auc(Y, S, w) == pytest.approx(pr_auc(Y[rep], S[rep]))


def test_roc_and_pr_auc_equal_sklearn_with_ties_and_weights():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.integers(0, 2, 60)
        s = np.round(rng.random(60), 1)  # many ties
        w = rng.integers(0, 4, 60).astype(float)
        assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
        assert pr_auc(y, s) == pytest.approx(average_precision_score(y, s))
        if w[y == 1].sum() and w[y == 0].sum():
            assert roc_auc(y, s, w) == pytest.approx(roc_auc_score(y, s, sample_weight=w))
            assert pr_auc(y, s, w) == pytest.approx(average_precision_score(y, s, sample_weight=w))
    assert roc_auc(Y, S) == pytest.approx(5 / 6)  # by hand: 5 of the 6 positive-negative pairs ordered right
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3])) and math.isnan(roc_auc(Y, S, [1, 1, 1, 0, 0]))


def test_bootstrap_ci_brackets_point_and_is_seeded():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1)
    pids = [f"p{i // 2}" for i in range(200)]
    ci = bootstrap_ci(y, s, pids, 0.5, n_boot=300, seed=1)
    for name, v in ci.items():
        assert v["ci_low"] <= v["value"] <= v["ci_high"], name
        assert v["ci_high"] - v["ci_low"] > 0, name
    assert ci == bootstrap_ci(y, s, pids, 0.5, n_boot=300, seed=1)


def test_bootstrap_by_patient_is_wider_than_by_image_for_clustered_data():
    # Each patient contributes 10 identical images: by-image resampling would pretend n = 400.
    rng = np.random.default_rng(0)
    py = rng.integers(0, 2, 40)
    ps = np.clip(py * 0.2 + rng.random(40) * 0.8, 0, 1)
    y, s = np.repeat(py, 10), np.repeat(ps, 10)
    by_patient = bootstrap_ci(y, s, [str(i // 10) for i in range(400)], 0.5, n_boot=400)
    by_image = bootstrap_ci(y, s, [str(i) for i in range(400)], 0.5, n_boot=400)
    width = lambda r: r["roc_auc"]["ci_high"] - r["roc_auc"]["ci_low"]  # noqa: E731
    assert width(by_patient) > 2 * width(by_image)


def test_bootstrap_undefined_metric_gets_nan_ci():
    ci = bootstrap_ci(np.zeros(10, int), np.linspace(0, 1, 10), [str(i) for i in range(10)], 0.5, n_boot=50)
    assert math.isnan(ci["roc_auc"]["value"]) and math.isnan(ci["roc_auc"]["ci_low"])
    assert ci["specificity"]["value"] == pytest.approx(0.5)


def test_thresholds():
    # Youden: J at 0.6 = 2/3 - 0 ; at 0.3 = 1 - 1/2 ; at 0.9 = 1/3 -> 0.6
    assert choose_threshold(Y, S, "youden") == pytest.approx(0.6)
    # Specificity >= 0.5 (1 of 2 negatives may be positive): lowest such threshold is 0.3
    assert choose_threshold(Y, S, "specificity", target_specificity=0.5) == pytest.approx(0.3)
    assert choose_threshold(Y, S, "specificity", target_specificity=1.0) == pytest.approx(0.6)
    assert choose_threshold(Y, S, "fixed", fixed=0.42) == 0.42
    assert choose_threshold(np.zeros(5), S, "youden", fixed=0.5) == 0.5  # one class: fall back to fixed
    with pytest.raises(ValueError, match="unknown threshold method"):
        choose_threshold(Y, S, "f1")


def test_sample_based_multilabel_metrics_by_hand():
    from scintix.evaluation.metrics import sample_based

    y = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 1]])
    p = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0], [0, 0, 0]])
    m = sample_based(y, p)
    assert m["accuracy"].tolist() == pytest.approx([1 / 3, 1, 1, 0])  # |Y&P|/|Y|P|; both empty agree -> 1
    assert m["precision"].tolist() == pytest.approx([1 / 2, 1, 1, 0])  # nothing predicted but labels present -> 0
    assert m["sensitivity"].tolist() == pytest.approx([1 / 2, 1, 1, 0])
    assert m["specificity"].tolist() == pytest.approx([0, 1, 1, 0])  # row 4: no negatives, yet all predicted negative -> 0
    assert m["f1"].tolist() == pytest.approx([2 / 4, 1, 1, 0])
    assert m["exact_match"].tolist() == [0, 1, 1, 0]


def test_multilabel_evaluation_reports_sample_based_metrics_with_cis():
    from types import SimpleNamespace

    from scintix.tasks import get_task

    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (40, 3))
    probs = np.clip(y * 0.7 + rng.random((40, 3)) * 0.4, 0, 1)
    cfg = SimpleNamespace(n_bootstrap=200, ci_level=0.95)
    out = get_task("multilabel").evaluate(probs, y, [f"P{i // 2}" for i in range(40)], {"a": 0.5, "b": 0.5, "c": 0.5}, ["a", "b", "c"], cfg)
    sb = out["sample_based"]
    assert sb["f1"]["value"] == pytest.approx(np.mean([2 * ((a & b).sum()) / max(a.sum() + b.sum(), 1) if a.sum() + b.sum() else 1.0
                                                       for a, b in zip(y.astype(bool), probs >= 0.5)]))
    assert sb["accuracy"]["ci_low"] <= sb["accuracy"]["value"] <= sb["accuracy"]["ci_high"]
