import numpy as np

from scintix.evaluation.health import assess_model, health_banner

CLASSES = ["normal", "abnormal"]


def _binary(p1):
    p1 = np.asarray(p1, float)
    return np.stack([1 - p1, p1], 1)


def _history(losses):
    return [{"epoch": str(i + 1), "val_loss": str(v)} for i, v in enumerate(losses)]


def test_a_constant_predictor_is_flagged_degenerate():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(30), np.ones(10)].astype(int)
    p = _binary(0.984 + 0.008 * rng.random(40))  # the quickstart's collapsed model
    h = assess_model(p, y, "binary", CLASSES, [1], {"abnormal": 0.99}, _history([0.6, 1.2, 3.3]), selected_epoch=3, train_eval_gap=0.56)
    assert h["degenerate"]
    assert {f["check"] for f in h["flags"]} == {"probability_span", "one_side", "threshold_edge", "selected_val_loss", "train_eval_gap"}
    assert "MODEL CHECK FAILED" in health_banner(h) and "0.560" in health_banner(h)


def test_a_good_predictor_passes_every_check():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = _binary(1 / (1 + np.exp(-(3 * (2 * y - 1) + rng.normal(size=200)))))
    h = assess_model(p, y, "binary", CLASSES, [1], {"abnormal": 0.47}, _history([0.7, 0.4, 0.35, 0.38]), selected_epoch=4, train_eval_gap=0.02)
    assert not h["degenerate"] and h["flags"] == [] and health_banner(h) == ""
    assert h["checks"]["min_val_loss"] == {"epoch": 3, "value": 0.35}


def test_each_check_fires_alone():
    y = np.r_[np.zeros(5), np.ones(5)].astype(int)
    good = _binary(np.linspace(0.05, 0.95, 10))
    assert not assess_model(good, y, "binary", CLASSES, [1], {"abnormal": 0.5})["degenerate"]
    low = _binary(np.linspace(0.01, 0.4, 10))  # spans enough, but all below 0.5
    assert [f["check"] for f in assess_model(low, y, "binary", CLASSES, [1], {"abnormal": 0.2})["flags"]] == ["one_side"]
    assert [f["check"] for f in assess_model(good, y, "binary", CLASSES, [1], {"abnormal": 0.005})["flags"]] == ["threshold_edge"]
    # a threshold at the edge that still separates validation (a near-perfect model's gap at 0.9995) is not degenerate
    sharp = _binary(np.r_[np.linspace(1e-5, 0.3, 5), np.linspace(0.9996, 0.99999, 5)])
    h = assess_model(sharp, y, "binary", CLASSES, [1], {"abnormal": 0.9995})
    assert not h["degenerate"] and h["checks"]["val_balanced_accuracy_at_threshold"] == {"abnormal": 1.0}
    # a small loss wobble is not "far above the minimum"; a 3x jump is
    assert not assess_model(good, y, "binary", CLASSES, [1], {"abnormal": 0.5}, _history([0.05, 0.09]), 2)["degenerate"]
    assert assess_model(good, y, "binary", CLASSES, [1], {"abnormal": 0.5}, _history([0.3, 0.9]), 2)["flags"][0]["check"] == "selected_val_loss"
    # multi-class: one predicted class for a validation set holding three
    y3 = np.array([0, 1, 2, 0, 1, 2])
    p3 = np.tile([0.2, 0.5, 0.3], (6, 1)) + np.linspace(0, 0.1, 6)[:, None] * [1, 0, -1]
    h = assess_model(p3, y3, "multiclass", ["a", "b", "c"], [0, 1, 2], {})
    assert "one_class" in {f["check"] for f in h["flags"]}
