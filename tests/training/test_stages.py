"""Training in stages (P3): stage 2 starts from stage 1's weights on the same patients, training only the named layers."""

import csv
import json

import pytest
import torch

from scintix.cli.__main__ import main
from scintix.config import load_config
from scintix.models import create_model
from scintix.models.weights import train_only


def test_train_only_freezes_the_rest_and_refuses_patterns_that_match_nothing():
    model = create_model("resnet_crossfeature", num_classes=4)
    patterns = load_config("p3-thyroid").stages[1]["set"]["model.train_only"]
    trainable, total = train_only(model, patterns)
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert 0 < trainable < total and "fc.weight" in names and "features.layer1.0.cross.weight" in names and "features.layer4.1.conv2.weight" in names
    assert "features.conv1.weight" not in names and "features.layer2.0.conv1.weight" not in names
    with pytest.raises(ValueError, match="matches no parameter"):
        train_only(model, ["nothing.*"])


def test_p3_two_stage_run_end_to_end(tmp_path, capsys):
    assert main(["simulate", str(tmp_path / "thy"), "--mode", "thyroid", "--n", "40", "--seed", "0"]) == 0
    stages = ("stages=[{name: single-feature, set: {data.train_max_labels: 1}}, "
              "{name: cross-training, set: {model.train_only: [features.layer4.*, '*.cross.*', fc.*], train.lr: 0.0001, train.epochs: 1}}]")
    fast = ["-o", "data.image_size=[32,32]", "-o", "train.batch_size=8", "-o", "train.channels_last=false", "-o", "train.tensorboard=false", "-o", "train.progress=false",
            "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false", "-o", "train.precise_bn=false", "-o", stages]
    assert main(["run", "--recipe", "p3-thyroid", "--data", str(tmp_path / "thy"), "--out", str(tmp_path / "p3"), "--epochs", "1", *fast]) == 0
    s1, s2 = tmp_path / "p3" / "stage1-single-feature", tmp_path / "p3" / "stage2-cross-training"
    summary = json.loads((tmp_path / "p3" / "stages.json").read_text())
    assert [s["name"] for s in summary] == ["single-feature", "cross-training"] and all(s["test"] for s in summary)
    split1 = {r["path"]: r["split"] for r in csv.DictReader(open(s1 / "split.csv"))}
    assert split1 == {r["path"]: r["split"] for r in csv.DictReader(open(s2 / "split.csv"))}  # the same patients
    d1, d2 = (json.loads((s / "data_summary.json").read_text())["splits"] for s in (s1, s2))
    assert d1["val"] == d2["val"] and d1["test"] == d2["test"] and d1["train"]["samples"] < d2["train"]["samples"]  # stage 1: single-feature training images only
    w1 = torch.load(s1 / "checkpoints" / "best.pt", weights_only=True)["model"]
    w2 = torch.load(s2 / "checkpoints" / "best.pt", weights_only=True)["model"]
    assert torch.equal(w1["features.conv1.weight"], w2["features.conv1.weight"])  # frozen in stage 2
    assert torch.equal(w1["features.bn1.running_var"], w2["features.bn1.running_var"])  # its BatchNorm statistics too
    assert not torch.equal(w1["features.layer4.0.bn1.running_var"], w2["features.layer4.0.bn1.running_var"])  # retrained layer's move
    assert not torch.equal(w1["fc.weight"], w2["fc.weight"])  # retrained
    from scintix.runfolder import load_run

    assert load_run(tmp_path / "p3").run_dir == s2  # the staged run's folder stands for its last stage (predict, explain, serve)
    # finished stages are not trained again
    before = (s1 / "checkpoints" / "best.pt").stat().st_mtime_ns
    assert main(["run", "--recipe", "p3-thyroid", "--data", str(tmp_path / "thy"), "--out", str(tmp_path / "p3"), "--epochs", "1", *fast]) == 0
    assert (s1 / "checkpoints" / "best.pt").stat().st_mtime_ns == before
    # ...unless asked with other settings: refused, naming the stage and what differs, nothing retrained or reported
    assert main(["run", "--recipe", "p3-thyroid", "--data", str(tmp_path / "thy"), "--out", str(tmp_path / "p3"), "--epochs", "2", *fast]) != 0
    err = capsys.readouterr().err
    assert "stage1-single-feature: stage 1 was made with other settings (train.epochs: 1 -> 2)" in err and "Traceback" not in err
    assert (s1 / "checkpoints" / "best.pt").stat().st_mtime_ns == before and len(json.loads((tmp_path / "p3" / "stages.json").read_text())) == 2
    (s2 / "eval" / "thresholds.json").unlink()  # a last stage not finished is said so, not replaced by the stage before it
    with pytest.raises(FileNotFoundError, match="has not finished"):
        load_run(tmp_path / "p3")
