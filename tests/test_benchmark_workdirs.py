"""Benchmark work folders are reused only when they were made with the settings of the call that reuses them."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not (ROOT / "benchmarks" / "_common.py").is_file(), reason="benchmarks/ not in this checkout")


@pytest.fixture
def common(benchmark_module):
    return benchmark_module("_common")


def _saved(run_dir: Path, cfg) -> Path:
    from scintix.config import config_to_dict

    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return run_dir


def test_a_work_folder_made_with_other_settings_is_cleared_with_what_was_made_from_it(tmp_path, common):
    from scintix.config import load_config

    cfg = load_config("quickstart", ["gan.epochs=20", "gan.base_channels=16"])
    gan, samples = _saved(tmp_path / "gan", cfg), tmp_path / "samples"
    samples.mkdir()
    assert not common.clear_if_other(gan, cfg, samples) and gan.is_dir() and samples.is_dir()  # same settings: reused
    longer = replace(cfg, gan=replace(cfg.gan, epochs=150))
    assert not common.clear_if_other(gan, longer, samples, resumable=("gan.epochs",)) and gan.is_dir()  # resumed to more epochs
    assert common.clear_if_other(gan, longer, samples) and not gan.exists() and not samples.exists()  # epochs not resumable here
    wider = _saved(tmp_path / "gan", cfg)
    assert common.clear_if_other(wider, replace(cfg, gan=replace(cfg.gan, base_channels=32)), resumable=("gan.epochs",)) and not wider.exists()
    assert not common.clear_if_other(tmp_path / "never-made", cfg)


def test_generated_images_older_than_their_generator_or_of_another_count_are_cleared(tmp_path, common):
    gan, gen = tmp_path / "gan", tmp_path / "gen"
    (gan / "checkpoints").mkdir(parents=True)
    gen.mkdir()
    (gan / "checkpoints" / "last.pt").write_bytes(b"x")
    (gen / "manifest.csv").write_text("path,label,generated\na.png,abnormal,1\nb.png,abnormal,1\n")
    old = (gen / "manifest.csv").stat().st_mtime
    os.utime(gan / "checkpoints" / "last.pt", (old - 10, old - 10))
    assert not common.clear_stale_samples(gen, gan, rows=2) and gen.is_dir()  # sampled after the generator's last epoch, as many as asked
    assert common.clear_stale_samples(gen, gan, rows=3) and not gen.exists()  # another count asked for
    gen.mkdir()
    (gen / "manifest.csv").write_text("path,label,generated\na.png,abnormal,1\n")
    os.utime(gan / "checkpoints" / "last.pt", (old + 3600, old + 3600))  # the generator trained on after sampling
    assert common.clear_stale_samples(gen, gan) and not gen.exists()
    assert not common.clear_stale_samples(gen, gan)  # nothing there


def test_a_results_file_made_with_other_settings_is_kept_under_earlier(tmp_path, common, monkeypatch):
    import json

    monkeypatch.setattr(common, "RESULTS", tmp_path)
    first = {"settings": {"n": 400}, "summary": {"a": 1}, "command": "p2 --n 400"}
    assert common.with_earlier("p2", first) == first  # nothing written before
    (tmp_path / "p2.json").write_text(json.dumps({**first, "single_run_probes": {"probe": 1}}))
    again = common.with_earlier("p2", {"settings": {"n": 400}, "summary": {"a": 2}}, keep=("single_run_probes",))
    assert again == {"single_run_probes": {"probe": 1}, "settings": {"n": 400}, "summary": {"a": 2}}  # same settings: replaced
    bigger = common.with_earlier("p2", {"settings": {"n": 1200}, "summary": {"a": 3}}, keep=("single_run_probes",))
    assert bigger["summary"] == {"a": 3} and bigger["single_run_probes"] == {"probe": 1}
    assert bigger["earlier"] == {json.dumps({"n": 400}): first}  # the n=400 table kept whole, the hand-merged probes once
    (tmp_path / "p2.json").write_text(json.dumps(bigger))
    third = common.with_earlier("p2", {"settings": {"n": 2000}, "summary": {"a": 4}}, keep=("single_run_probes",))
    assert set(third["earlier"]) == {json.dumps({"n": 400}), json.dumps({"n": 1200})} and "earlier" not in third["earlier"][json.dumps({"n": 1200})]
    (tmp_path / "p2.json").write_text(json.dumps({"summary": {"a": 0}, "command": "p2 by hand"}))  # an old file without settings: keyed by its command
    assert common.with_earlier("p2", {"settings": {"n": 1}})["earlier"] == {"p2 by hand": {"summary": {"a": 0}, "command": "p2 by hand"}}


def test_the_readme_shows_an_earlier_p2_table_beside_the_newest(tmp_path, monkeypatch, benchmark_module):
    import json

    tables = benchmark_module("_tables_synthesis")

    monkeypatch.setattr(tables, "RES", tmp_path)
    assert tables.p2_wholebody() == []  # no results file: no table

    def table(n: int, acc: list[float]) -> dict:
        runs = {f"dspic-geo-s{s}": {"per_label_roc_auc": {"metastasis": {"value": 0.5 + a / 10}}, "wall_seconds": 10.0 * n,
                                    **({"val_per_label_roc_auc": {"metastasis": 0.9, "normal": 0.7}} if n > 400 else {})} for s, a in enumerate(acc)}
        per = {"metastasis": {"auc_of_seed_averaged_scores": {"value": 0.1, "ci_low": 0.0, "ci_high": 0.2},
                              "sensitivity_mean_over_seeds": {"value": 0.05, "ci_low": -0.1, "ci_high": 0.2}}}
        return {"device": "cpu", "data": f"SYNTHETIC n={n}", "epochs": 20, "gan": {"epochs": 30, "ratio": 0.5}, "runs": runs,
                "summary": {"dspic-geo": {k: [sum(acc) / len(acc), 0.0] for k in ("accuracy", "precision", "sensitivity", "specificity", "f1")}},
                "model_differences_geo": {"dspic_minus_alexnet": per}}

    old = {**table(400, [0.4, 0.4]), "command": "python benchmarks/p2_wholebody.py --n 400", "note": "its AlexNet used the default init"}
    new = {**table(1200, [0.6, 0.8]), "equal_steps_epochs": {"dspic-s0": 30, "dspic-s1": 30}}
    for s, (run, prec) in enumerate(zip(new["runs"].values(), (0.5, None))):  # per label at the val threshold; precision undefined in one run
        run["per_label"] = {"metastasis": {k: {"value": 0.6 + 0.2 * s} for k in ("accuracy", "recall", "specificity", "f1")} | {"precision": {"value": prec}}}
    new |= {"geo_gan_minus_geo_steps": {"dspic": new["model_differences_geo"]["dspic_minus_alexnet"]}, "geo_steps_minus_geo": {"dspic": {}}}
    (tmp_path / "p2_wholebody.json").write_text(json.dumps({**new, "earlier": {"n400": old}}))
    text = "\n".join(tables.p2_wholebody())
    newest, earlier = text.split("Earlier, with other settings (`python benchmarks/p2_wholebody.py --n 400`): Its AlexNet used the default init.")
    assert "geo + GAN - geo_steps (geo_steps: the geo arm trained 30 epochs" in newest and "geo_steps - geo (what the extra steps alone bought)" in newest
    assert "geo_steps" not in earlier  # an earlier table without the control shows none
    assert "| dspic-geo | metastasis | 0.700 ± 0.141 | 0.500 ± 0.000 | 0.700 ± 0.141 |" in newest and "Per label" not in earlier
    assert "SYNTHETIC n=1200" in newest and "| dspic-geo | 0.570 ± 0.014 | 0.700 ± 0.000 |" in newest and "| 12000 | 0.800 ± 0.000 |" in newest
    assert "SYNTHETIC n=400" in earlier and "| dspic-geo | 0.540 ± 0.000 | 0.400 ± 0.000 |" in earlier and "| 4000 | n/a |" in earlier
    assert newest.count("- dspic - alexnet: metastasis AUC 0.1000 [0.0000, 0.2000]") == 1 and "n=1200" not in earlier


def test_an_interrupted_benchmark_leaves_its_last_complete_results_file(tmp_path, common, monkeypatch):
    """Figures so far go to work/<name>.progress.json; the results file is replaced only when complete, and atomically."""
    import json
    import sys

    import p3_thyroid

    monkeypatch.setattr(common, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(common, "WORK", tmp_path / "work")
    monkeypatch.setattr(p3_thyroid, "WORK", tmp_path / "work")
    before = common.write_result("p3_thyroid", {"runs": {"plain-s0": "complete, from an earlier run"}}).read_text()
    (tmp_path / "work" / "sim-thyroid-n600").mkdir(parents=True)
    (tmp_path / "work" / "sim-thyroid-n600" / "manifest.csv").write_text("")  # the simulation is "there": nothing simulated
    calls = []

    def one_run(data, name, extra):  # the first run finishes, the second is interrupted
        calls.append(name)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return {"run_dir": name, "macro_roc_auc": 0.75, "per_class_roc_auc": {}, "sample_based": {"f1": {"value": 0.5}}}

    monkeypatch.setattr(p3_thyroid, "_run", one_run)
    monkeypatch.setattr(sys, "argv", ["p3_thyroid.py", "--arms", "plain", "--seeds", "0", "1"])
    with pytest.raises(KeyboardInterrupt):
        p3_thyroid.main()
    assert calls == ["p3-plain-s0", "p3-plain-s1"]
    assert (tmp_path / "results" / "p3_thyroid.json").read_text() == before  # not replaced by a partial table
    progress = json.loads((tmp_path / "work" / "p3_thyroid.progress.json").read_text())
    assert progress["complete"] is False and progress["runs"]["plain-s0"]["macro_roc_auc"] == 0.75 and "plain-s1" not in progress["runs"]

    def half_then_fail(self, text, *args, **kwargs):  # a write killed half-way
        with open(self, "w") as f:
            f.write(text[: len(text) // 2])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(OSError):
        common.write_result("p3_thyroid", {"runs": {"plain-s0": "new"}})
    monkeypatch.undo()
    assert (tmp_path / "results" / "p3_thyroid.json").read_text() == before  # the old file whole, no temporary left
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["p3_thyroid.json"]
