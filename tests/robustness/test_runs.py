"""Issue 15, items 5-6: damaged or foreign run folders are one line naming the file; outputs are never destroyed by a failure."""

from __future__ import annotations

import json

import corpus as c
import pytest
from robust_helpers import FAST, cli, one_error, tiny_data

DAMAGE = {  # file -> (how, words of the message)
    "truncated best.pt": ("checkpoints/best.pt", lambda p: c.truncated(p, p, 0.5), "truncated or damaged"),
    "empty best.pt": ("checkpoints/best.pt", lambda p: p.write_bytes(b""), "empty checkpoint"),
    "text best.pt": ("checkpoints/best.pt", lambda p: p.write_text("not a checkpoint\n"), "truncated or damaged"),
    "pickle best.pt": ("checkpoints/best.pt", c.malicious_pickle, "refused"),
    "yaml config": ("config.yaml", lambda p: p.write_text("data: [unclosed\n"), "invalid YAML"),
    "empty config": ("config.yaml", lambda p: p.write_text(""), "empty"),
    "json thresholds": ("eval/thresholds.json", lambda p: p.write_text("{not json"), "invalid JSON"),
    "thresholds missing class": ("eval/thresholds.json", lambda p: p.write_text('{"thresholds": {"other": 0.5}}'), "no threshold for class 'abnormal'"),
    "json calibration": ("eval/calibration.json", lambda p: p.write_text("[1, 2"), "invalid JSON"),
    "zero temperature": ("eval/calibration.json", lambda p: p.write_text('{"temperature": 0}'), "invalid calibration temperature"),
    "nan temperature": ("eval/calibration.json", lambda p: p.write_text('{"temperature": NaN}'), "invalid calibration temperature"),
    "negative temperature": ("eval/calibration.json", lambda p: p.write_text('{"temperature": -1.5}'), "invalid calibration temperature"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
@pytest.mark.parametrize("command", ["predict", "explain", "report"])
def test_damaged_run_is_one_line_naming_the_file(run_copy, tmp_path, capsys, case, command):
    rel, damage, words = DAMAGE[case]
    damage(run_copy / rel)
    image = c.good_png(tmp_path / "x.png", seed=1)
    args = {"predict": ["predict", run_copy, image, "--out", tmp_path / "p.csv"], "explain": ["explain", run_copy, image, "--out", tmp_path / "maps"],
            "report": ["report", run_copy, "--gallery", "1", "--faithfulness-n", "2"]}[command]
    if command == "report" and rel.startswith("eval/thresholds") is False and "temperature" not in case and "calibration" not in case and "best.pt" not in case and "config" not in case:
        pytest.skip("not read by report")
    code, out, err = cli(capsys, *args)
    assert code == 2
    line = one_error(err, rel.split("/")[-1], words)
    assert "weights_only=False" not in line and "PWNED" not in out + line  # the pickle never ran, and we never suggest running it
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize("case", ["truncated best.pt", "pickle best.pt", "yaml config", "empty config"])
def test_evaluate_on_a_damaged_run(run_copy, capsys, case):
    rel, damage, words = DAMAGE[case]
    damage(run_copy / rel)
    code, _, err = cli(capsys, "evaluate", run_copy)
    assert code == 2 and one_error(err, rel.split("/")[-1], words)


@pytest.mark.parametrize("how,words", [(lambda p: c.truncated(p, p, 0.3), "truncated or damaged"), (lambda p: p.write_bytes(b""), "empty checkpoint"), (c.malicious_pickle, "refused")])
def test_resume_from_a_damaged_last_checkpoint(run_copy, capsys, how, words):
    how(run_copy / "checkpoints" / "last.pt")
    code, out, err = cli(capsys, "run", "--resume", "--out", run_copy)
    assert code == 2 and "PWNED" not in out
    assert "weights_only=False" not in one_error(err, "last.pt", words)


def test_predict_never_writes_into_the_run_folder(run_copy, tmp_path, capsys):
    image = c.good_png(tmp_path / "x.png", seed=1)
    thresholds = (run_copy / "eval" / "thresholds.json").read_bytes()
    for target in (run_copy / "eval" / "thresholds.json", run_copy / "checkpoints" / "best.csv", run_copy / "config.yaml"):
        code, _, err = cli(capsys, "predict", run_copy, image, "--out", target)
        assert code == 2 and one_error(err, str(target))
    assert (run_copy / "eval" / "thresholds.json").read_bytes() == thresholds
    code, _, err = cli(capsys, "predict", run_copy, image, "--out", tmp_path)  # a folder: refused before any inference
    assert code == 2 and one_error(err, "is a folder")
    code, _, _ = cli(capsys, "predict", run_copy, image, "--out", run_copy / "my_predictions.csv")  # a new file of the user's own is fine
    assert code == 0 and (run_copy / "my_predictions.csv").is_file()


def test_a_failed_crop_keeps_the_earlier_outputs(tmp_path, capsys):
    assert cli(capsys, "simulate", tmp_path / "sim", "--n", "2", "--seed", "1")[0] == 0
    assert cli(capsys, "crop", tmp_path / "sim", "--out", tmp_path / "crops")[0] == 0
    before = {n: (tmp_path / "crops" / n).read_bytes() for n in ("manifest.csv", "regions.json")}
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"junk")
    code, _, err = cli(capsys, "crop", tmp_path / "junk", "--out", tmp_path / "crops")
    assert code == 2 and any("a.png" in ln for ln in err)
    for margin in ("-5", "nan", "3"):
        code, _, err = cli(capsys, "crop", tmp_path / "sim", "--out", tmp_path / "crops", "--margin", margin)
        assert code == 2 and one_error(err, "--margin")
    assert {n: (tmp_path / "crops" / n).read_bytes() for n in before} == before


def test_a_run_that_failed_before_its_first_checkpoint_starts_again_in_place(tmp_path, capsys):
    data = tmp_path / "data"
    data.mkdir()
    manifest = tiny_data(data)
    one_class = data / "one_class.csv"
    one_class.write_text("".join(ln.replace(",1,", ",0,") for ln in manifest.read_text().splitlines(keepends=True)))
    run = tmp_path / "run"
    code, _, err = cli(capsys, "run", "--data", one_class, "--out", run, "--epochs", "1", *FAST)
    assert code == 2 and one_error(err, "only class", "'normal'")
    code, _, err = cli(capsys, "run", "--resume", "--out", run)
    assert code == 2 and one_error(err, "failed before its first checkpoint", "without --resume")
    code, _, _ = cli(capsys, "run", "--data", manifest, "--out", run, "--epochs", "1", *FAST)
    assert code == 0 and (run / "checkpoints" / "best.pt").is_file()
    assert json.loads((run / "data_summary.json").read_text())["classes"] == ["normal", "abnormal"]
    code, _, err = cli(capsys, "run", "--data", manifest, "--out", run, "--epochs", "1", *FAST)  # a run that trained is never overwritten
    assert code == 2 and one_error(err, "already holds a run")
