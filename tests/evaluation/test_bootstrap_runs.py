"""Per-image differences (e.g. per-scan Dice) between two recipes with several training seeds each."""

import numpy as np
import pytest

from scintix.evaluation.bootstrap import mean_difference_over_runs, paired_difference_ci


def _scans(rng, n=120):
    pids = [f"P{i // 2}" for i in range(n)]  # two scans per patient
    lesion = rng.random(n) < 0.7  # lesion-free scans have no Dice: NaN
    base = np.where(lesion, np.clip(rng.normal(0.6, 0.15, n), 0, 1), np.nan)
    return pids, lesion, base


def test_one_run_each_is_the_patient_bootstrap_with_the_same_draws():
    rng = np.random.default_rng(0)
    pids, lesion, a = _scans(rng)
    b = np.where(lesion, a - rng.normal(0.03, 0.05, len(a)), np.nan)
    one = mean_difference_over_runs([a], [b], pids, n_boot=300)
    ref = paired_difference_ci(a, b, pids, n_boot=300)
    assert {k: one[k] for k in ref} == pytest.approx(ref)
    assert one["n"] == lesion.sum() and one["value"] == pytest.approx(np.mean(a[lesion] - b[lesion]))


def test_seeds_that_disagree_widen_the_interval_and_pairing_by_seed_narrows_it():
    rng = np.random.default_rng(1)
    pids, lesion, base = _scans(rng)
    other = np.where(lesion, base - 0.02 + rng.normal(0, 0.05, len(base)), np.nan)
    ref = paired_difference_ci(base, other, pids, n_boot=300)
    copies = mean_difference_over_runs([base] * 3, [other] * 2, pids, n_boot=300)
    assert (copies["ci_low"], copies["ci_high"]) == pytest.approx((ref["ci_low"], ref["ci_high"]))  # seeds that agree add nothing
    seeds = [base + shift for shift in (-0.08, 0.0, 0.08)]  # one recipe's mean Dice moves by 0.08 with the seed
    noisy = mean_difference_over_runs(seeds, [other], pids, n_boot=300)
    assert noisy["value"] == pytest.approx(np.mean(np.mean(seeds, 0)[lesion] - other[lesion])) and not noisy["runs_paired"]
    assert noisy["ci_high"] - noisy["ci_low"] > 1.5 * (ref["ci_high"] - ref["ci_low"])
    close = [s - 0.01 for s in seeds]  # a recipe that follows each seed: paired by position, the seed shift cancels
    paired = mean_difference_over_runs(seeds, close, pids, n_boot=300)
    shuffled = mean_difference_over_runs(seeds, close[::-1], pids, n_boot=300)
    assert paired["runs_paired"] and paired["value"] == pytest.approx(0.01) == pytest.approx(shuffled["value"])
    assert paired["ci_low"] == pytest.approx(0.01) and paired["ci_high"] == pytest.approx(0.01)
    assert shuffled["ci_high"] - shuffled["ci_low"] > 0.05


def test_bad_runs_refused():
    with pytest.raises(ValueError, match="at least one run per recipe"):
        mean_difference_over_runs([], [np.zeros(3)], ["a", "b", "c"])
    with pytest.raises(ValueError, match="same images"):
        mean_difference_over_runs([np.zeros(3)], [np.zeros(4)], ["a", "b", "c"])
