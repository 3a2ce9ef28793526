import numpy as np
import pytest

from scintix.evaluation.calibration import (
    apply_temperature,
    calibrate_temperature,
    expected_calibration_error,
    fit_temperature,
    reliability_curve,
)


def _overconfident(rng, n=3000, k=3, scale=4.0):
    """A 'model' whose true logits are z but which reports scale * z: overconfident."""
    z = rng.normal(size=(n, k)) * 1.5
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    y = np.array([rng.choice(k, p=pi) for pi in p])
    return z * scale, y


def test_temperature_scaling_lowers_ece_and_recovers_the_scale():
    rng = np.random.default_rng(0)
    logits, y = _overconfident(rng)
    t = fit_temperature(logits[:1500], y[:1500], "multiclass")
    assert t == pytest.approx(4.0, rel=0.2)
    before = expected_calibration_error(apply_temperature(logits[1500:], 1.0, "multiclass"), y[1500:], "multiclass")
    after = expected_calibration_error(apply_temperature(logits[1500:], t, "multiclass"), y[1500:], "multiclass")
    assert before > 0.1 and after < 0.5 * before
    # the ranking (so accuracy and AUC) does not change
    assert np.array_equal(apply_temperature(logits, t, "multiclass").argmax(1), logits.argmax(1))


def test_multilabel_and_binary_calibration():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(4000, 2)) * 2
    y = (rng.random(z.shape) < 1 / (1 + np.exp(-z))).astype(int)
    t = fit_temperature(z * 0.3, y, "multilabel")  # underconfident by 1/0.3
    assert t == pytest.approx(0.3, rel=0.2)
    assert expected_calibration_error(apply_temperature(z * 0.3, t, "multilabel"), y, "multilabel") < expected_calibration_error(apply_temperature(z * 0.3, 1.0, "multilabel"), y, "multilabel")
    zb = np.stack([np.zeros(3000), rng.normal(size=3000) * 2], 1)
    yb = (rng.random(3000) < 1 / (1 + np.exp(-zb[:, 1]))).astype(int)
    assert fit_temperature(zb * 5, yb, "binary") == pytest.approx(5.0, rel=0.2)


def test_ece_of_a_perfectly_calibrated_predictor_is_small_and_bins_count():
    rng = np.random.default_rng(2)
    p1 = rng.random(20000)
    y = (rng.random(20000) < p1).astype(int)
    probs = np.stack([1 - p1, p1], 1)
    assert expected_calibration_error(probs, y, "binary") < 0.02
    c = reliability_curve(np.array([0.05, 0.15, 0.15, 0.95]), np.array([0, 1, 0, 1]), n_bins=10)
    assert c["count"].tolist() == [1, 2, 0, 0, 0, 0, 0, 0, 0, 1]
    assert c["frequency"][1] == 0.5
    assert fit_temperature(np.zeros((1, 2)), np.zeros(1), "binary") == 1.0


def test_near_constant_logits_are_reported_as_a_failed_fit_not_fitted():
    # the quickstart's collapsed model: every validation logit nearly the same, whatever the label
    z = np.stack([np.zeros(40), 4 + 1e-3 * np.random.default_rng(0).normal(size=40)], 1)
    y = np.r_[np.zeros(20), np.ones(20)].astype(int)
    fit = calibrate_temperature(z, y, "binary")
    assert not fit.fitted and fit.status == "out_of_range"
    assert fit.temperature == 1.0 and fit.optimum > fit.bounds[1]
    assert "upper bound 100" in fit.reason and "FAILED" in fit.describe() and "fitted on validation" not in fit.describe()
    d = fit.to_dict()
    assert d["fitted"] is False and d["optimum"] > 100


def test_calibrated_validation_ece_is_never_worse_than_raw():
    statuses = set()
    for seed in range(40):  # small random validation sets, where NLL and ECE can disagree
        rng = np.random.default_rng(seed)
        z = rng.normal(size=(16, 2)) * 2
        y = rng.integers(0, 2, 16)
        fit = calibrate_temperature(z, y, "binary")
        statuses.add(fit.status)
        raw = expected_calibration_error(apply_temperature(z, 1.0, "binary"), y, "binary")
        assert expected_calibration_error(apply_temperature(z, fit.temperature, "binary"), y, "binary") <= raw + 1e-12
        if fit.status == "worse_ece":  # the optimum was rejected because it raised the ECE
            assert fit.describe().startswith("not applied, raw probabilities kept") and "FAILED" not in fit.describe()
            assert fit.ece_fitted > fit.ece_raw and fit.temperature == 1.0
    assert {"fitted", "worse_ece", "out_of_range"} <= statuses
