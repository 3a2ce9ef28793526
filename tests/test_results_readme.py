"""The README's results tables: rendered from benchmarks/results/*.json, never typed by hand, each figure with the
command that made it (issue 14, item 6)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def _table_module(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import results_table

    return results_table


@pytest.mark.skipif(not (ROOT / "benchmarks" / "results_table.py").is_file(), reason="benchmarks/ not in this checkout")
def test_readme_tables_equal_what_the_results_files_render():
    rendered = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "results_table.py")], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- RESULTS START -->\n", 1)[1].split("\n<!-- RESULTS END -->", 1)[0]
    assert block == rendered.stdout.removesuffix("\n"), "README results differ from benchmarks/results: run `python benchmarks/results_table.py --readme`"


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda p: p.name)
def test_every_results_file_records_the_commands_that_made_it(path, monkeypatch):
    results_table = _table_module(monkeypatch)
    d = json.loads(path.read_text())
    entries = results_table._commands(d)
    assert entries or isinstance(d.get("last_written_by", {}).get("command"), str), f"{path.name}: no command recorded"
    for where, e in entries:
        assert "python" in e["command"] or "scintix" in e["command"], (path.name, where, e["command"])


def test_commands_block_lists_each_entry_and_flags_a_file_without(tmp_path, monkeypatch):
    results_table = _table_module(monkeypatch)
    monkeypatch.setattr(results_table, "RES", tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({"runs": {"x": {"command": "python benchmarks/a.py --x", "code": "abc1234"},
                                                          "y": {"command": "python benchmarks/a.py --y", "command_note": "derived"}},
                                                 "last_written_by": {"command": "python benchmarks/a.py --y", "code": "def5678"}}))
    (tmp_path / "b.json").write_text(json.dumps({"rows": [1, 2]}))
    (tmp_path / "c.json").write_text(json.dumps({"rows": [1], "last_written_by": {"command": "python benchmarks/c.py", "code": "0a1b2c3"}}))
    block = "\n".join(results_table.commands_block(["a", "b", "c"]))
    assert "`a.json` runs/x: `python benchmarks/a.py --x` (code: abc1234)" in block
    assert "`a.json` runs/y: `python benchmarks/a.py --y` (derived afterwards" in block
    assert block.count("benchmarks/a.py") == 2  # the file's last writer is not repeated when its entries carry their own
    assert "`b.json`: no command recorded" in block
    assert "`c.json`: `python benchmarks/c.py` (code: 0a1b2c3)" in block
    lines = results_table.with_commands(["### A (`benchmarks/a.py`)", "text", "### C (`benchmarks/c.py`, again `benchmarks/a.py`)", "more"])
    assert lines.index("### C (`benchmarks/c.py`, again `benchmarks/a.py`)") > lines.index("- `a.json` runs/y: `python benchmarks/a.py --y` (derived afterwards from the settings the file records)")
    assert sum("`a.json` runs/x" in line for line in lines) == 1  # a file's commands appear once, under the first section naming it


def test_p1_paper_table_rows_and_factor_contrasts(monkeypatch):
    results_table = _table_module(monkeypatch)
    m = {"value": 0.9, "ci_low": 0.85, "ci_high": 0.95}
    arm = {f"pooled_{k}_at_fold_thresholds": m for k in ("accuracy", "precision", "sensitivity", "specificity", "f1")}
    arm.update(pooled_oof_auc={"value": 0.95, "ci_low": 0.93, "ci_high": 0.97}, wall_seconds_this_call=600, device="cpu (2 threads)",
               minus_loss_weighted={"pooled_auc_difference": {"value": 0.012, "ci_low": -0.004, "ci_high": 0.027}, "pooled_auc_b": 0.949, "per_fold_difference": [0.01, -0.02]})
    d = {"variants": {"loss_weighted": {"pooled_oof_auc": {"value": 0.941}}, "p1_resnet18_raw_augds": arm},
         "p1_contrasts": {"resnet18: raw - normalised, with the augmented dataset": {"pooled_auc_difference": {"value": -0.02, "ci_low": -0.04, "ci_high": 0.001}}}}
    text = "\n".join(results_table.p1_paper_table(d))
    assert "| resnet18 | raw | with | 0.900 [0.850, 0.950] |" in text and "| 0.950 [0.930, 0.970] | 10 min (cpu (2 threads)) |" in text
    assert "`p1_resnet18_raw_augds` minus the recipe" in text and "0.012 [-0.004, 0.027]; per fold +0.010, -0.020" in text
    assert "its earlier bf16 run, pooled 0.949" in text  # paired with a run other than the one the table shows
    assert "resnet18: raw - normalised, with the augmented dataset: -0.020 [-0.040, 0.001]" in text
    assert results_table.p1_paper_table({"variants": {"loss_weighted": {}}}) == []  # no P1 arm yet: no table


def test_text_segmentation_cv_table(tmp_path, monkeypatch, benchmark_module):
    tables = benchmark_module("_tables_segmentation")

    m = {"value": 0.55, "ci_low": 0.5, "ci_high": 0.6}
    arm = {"dice": m, "global_dice": m, "fold_dice_mean": 0.56, "fold_dice_sd": 0.03, "wall_seconds_this_call": 120}
    text_arm = {**arm, "text_conditions": {"dice": {"report": m, "no_report": {"value": 0.41, "ci_low": 0.35, "ci_high": 0.47}, "other_patient_report": m}}}
    diff = {"per_class": {"lesion": {"dice_difference": {"value": 0.021, "ci_low": 0.004, "ci_high": 0.038}, "per_fold_difference_mean": 0.02, "per_fold_difference_sd": 0.01}}}
    (tmp_path / "text_segmentation_cv.json").write_text(json.dumps({"settings": {"p4zh_n200_k5_e15": {
        "folds": 5, "epochs_per_stage": 15, "device": "NVIDIA H200", "arms": {"unet-s0": arm, "unet2-s0": arm, "text-s0": text_arm},
        "text_minus_unet2": diff, "unet2_minus_unet": diff}}}))
    monkeypatch.setattr(tables, "RES", tmp_path)
    text = "\n".join(tables.text_segmentation_cv())
    assert "| p4zh_n200_k5_e15 (5 folds, 15 ep. per stage) | NVIDIA H200 | text | 0 | 0.550 [0.500, 0.600] |" in text
    assert "| 0.560 ± 0.030 | 0.410 [0.350, 0.470] | 0.550 [0.500, 0.600] | 2.0 min |" in text and "unet2 | 0 |" in text
    assert "**text - unet2 (primary)**, lesion | | **0.021 [0.004, 0.038]** | | per fold +0.020 ± 0.010" in text


def test_medmnist_intensity_rows_and_differences(monkeypatch):
    results_table = _table_module(monkeypatch)
    m = {"value": 0.98, "ci_low": 0.97, "ci_high": 0.99}
    arm = {"test_auc": m, "test_acc_at_0.5": 0.9375, "test_acc_at_val_threshold": m, "epochs_run": 24, "wall_seconds_total": 429.4}
    r = {"overrides": ["augment.gamma=0.5"], "declared": "before the runs",
         "seeds": {"0": {"with": arm, "without": arm, "test_auc_difference": {"value": 0.019, "ci_low": 0.008, "ci_high": 0.032}},
                   "1": {"with": arm, "without": arm, "test_auc_difference": {"value": -0.002, "ci_low": -0.01, "ci_high": 0.006}}},
         "test_auc_difference_over_seeds": {"value": 0.0085, "ci_low": -0.004, "ci_high": 0.02, "runs_auc_a": [0.98, 0.97], "runs_auc_b": [0.96, 0.97]}}
    text = "\n".join(results_table.medmnist_intensity(r))
    assert "| scintix + intensity augmentation, seed 1 | 0.980 [0.970, 0.990] | 0.938 | 0.980 [0.970, 0.990] | 24 epochs, 7.2 min total |" in text
    assert "seed 0 0.019 [0.008, 0.032]; seed 1 -0.002 [-0.010, 0.006]" in text and "(mean test AUC 0.975 with, 0.965 without" in text
    assert "0.009 [-0.004, 0.020]" in text and results_table.medmnist_intensity(None) == []


def test_p1_cv_row_lists_every_pairing_of_a_variant(tmp_path, monkeypatch):
    results_table = _table_module(monkeypatch)
    m = {"value": 0.95, "ci_low": 0.93, "ci_high": 0.97}
    row = {"n": 2195, "positives": 136, "per_fold": [{"roc_auc": 0.95}], "fold_auc_mean": 0.95, "fold_auc_sd": 0.01, "pooled_oof_auc": m,
           "pooled_sensitivity_at_fold_thresholds": m, "pooled_specificity_at_fold_thresholds": m, "wall_seconds_this_call": 120}
    tta = {**row, "minus_x": {"pooled_auc_difference": {"value": 0.004, "ci_low": -0.001, "ci_high": 0.009}, "pooled_auc_b": 0.95},
           "minus_loss_weighted": {"pooled_auc_difference": {"value": 0.01, "ci_low": -0.01, "ci_high": 0.03}, "pooled_auc_b": 0.949}}
    (tmp_path / "p1_cv.json").write_text(json.dumps({"device": "cpu", "variants": {"loss_weighted": row, "x": row, "x_tta": tta}}))
    monkeypatch.setattr(results_table, "RES", tmp_path)
    text = "\n".join(results_table.p1_cv())
    assert "| 0.004 [-0.001, 0.009] vs x; 0.010 [-0.010, 0.030] vs loss_weighted | 2 min |" in text
    seed1 = {**row, "minus_seed0": {"pooled_auc_difference": {"value": -0.006, "ci_low": -0.02, "ci_high": 0.008}, "pooled_auc_b": 0.949}}
    (tmp_path / "p1_cv.json").write_text(json.dumps({"device": "cpu", "variants": {"loss_weighted": row, "loss_weighted-seed1": seed1}}))
    assert "| -0.006 [-0.020, 0.008] vs its seed 0 (the same recipe: training noise alone) | 2 min |" in "\n".join(results_table.p1_cv())
    ens = {"members": ["loss_weighted", "loss_weighted-seed1"], "against": "loss_weighted", **m, "minus_against": {"value": 0.005, "ci_low": -0.002, "ci_high": 0.012}}
    (tmp_path / "p1_cv.json").write_text(json.dumps({"device": "cpu", "variants": {"loss_weighted": row}, "ensembles": {"loss_weighted+loss_weighted-seed1": ens}}))
    assert ("the mean out-of-fold probability of `loss_weighted`, `loss_weighted-seed1`: pooled ROC-AUC 0.950 [0.930, 0.970]; minus `loss_weighted` alone, "
            "paired 0.005 [-0.002, 0.012].") in "\n".join(results_table.p1_cv())


def test_one_seed_has_no_sd_in_the_text_segmentation_rows(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    from _tables_segmentation import mean_sd_cell
    from text_segmentation import _mean_sd

    assert _mean_sd([0.5]) == [0.5, None] and _mean_sd([0.5, 0.7])[1] == pytest.approx(0.1414, abs=1e-4)  # null, not 0.0 or NaN

    assert mean_sd_cell([0.7, 0.012], 3) == "0.700 ± 0.012"
    for sd in (0.0, float("nan"), None):  # one seed: older files wrote 0.0, newer ones null
        assert mean_sd_cell([0.7, sd], 1) == "0.700 (one seed: no sd)"


def test_benchmark_code_is_dirty_only_for_code_changes(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import _common

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True,
                       env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path)})

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "x.json").write_text("{}")
    (tmp_path / "code.py").write_text("a = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "x")
    monkeypatch.setattr(_common, "ROOT", tmp_path)
    clean = _common.invocation()["code"]
    assert clean and not clean.endswith("-dirty")
    (tmp_path / "benchmarks" / "results" / "x.json").write_text('{"new": 1}')  # a benchmark rewrote its results file
    (tmp_path / "untracked.txt").write_text("?")
    assert _common.invocation()["code"] == clean
    (tmp_path / "code.py").write_text("a = 2\n")
    assert _common.invocation()["code"] == clean + "-dirty"
