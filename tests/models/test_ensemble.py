"""Averaging probabilities: an ensemble of identical models is that model; TTA with the identity is no TTA; ensembles load like runs."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scintix.cli.__main__ import main
from scintix.models import create_model
from scintix.models.ensemble import TTA, TTA_TRANSFORMS, Ensemble


@pytest.mark.parametrize("multilabel", [False, True])
def test_an_ensemble_of_identical_models_equals_one_model(multilabel):
    torch.manual_seed(0)
    m = create_model("small_cnn", num_classes=3).eval()
    x = torch.randn(4, 1, 24, 16)
    act = torch.sigmoid if multilabel else (lambda z: torch.softmax(z, 1))
    with torch.no_grad():
        one = act(m(x) / 1.5)
        ens = Ensemble([m, copy.deepcopy(m), copy.deepcopy(m)], [1.5, 1.5, 1.5], multilabel).eval()
        assert torch.allclose(act(ens(x)), one, atol=1e-6)
        other = create_model("small_cnn", num_classes=3).eval()
        mixed = act(Ensemble([m, other], multilabel=multilabel)(x))
        assert torch.allclose(mixed, (act(m(x)) + act(other(x))) / 2, atol=1e-6)  # the mean of the members' probabilities


def test_tta_with_the_identity_equals_no_tta_and_shifts_move_the_image():
    torch.manual_seed(0)
    m = create_model("small_cnn", num_classes=2).eval()
    x = torch.randn(3, 1, 24, 16)
    with torch.no_grad():
        assert torch.allclose(torch.softmax(TTA(m, ["identity"])(x), 1), torch.softmax(m(x), 1), atol=1e-6)
        linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(24 * 16, 2))  # position-sensitive
        assert (TTA(linear, ["identity", "shift"])(x) - TTA(linear, ["identity"])(x)).abs().max() > 1e-3
    down = TTA_TRANSFORMS["shift"][0](torch.arange(12.0).reshape(1, 1, 4, 3))
    assert down[0, 0, 0].tolist() == [0, 0, 0] and down[0, 0, 2].tolist() == [0, 1, 2]  # 2 px down, zero-filled
    with pytest.raises(ValueError, match="names among"):
        TTA(m, ["hflip"])


def test_ensemble_folder_predicts_like_a_run(tiny_run, tmp_path, capsys):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    assert main(["ensemble", str(tiny_run), str(other), "--out", str(tmp_path / "ens")]) == 0
    spec = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert len(spec["members"]) == 2
    img = next(p for p in tiny_run.parent.glob("p1_ant.png"))
    assert main(["predict", str(tmp_path / "ens"), str(img), "--out", str(tmp_path / "pe.csv")]) == 0
    assert main(["predict", str(tiny_run), str(img), "--out", str(tmp_path / "p1.csv")]) == 0
    ra, rb = (tmp_path / "pe.csv").read_text().splitlines(), (tmp_path / "p1.csv").read_text().splitlines()
    head = ra[0].split(",")
    col = head.index("prob_abnormal")
    assert float(ra[1].split(",")[col]) == pytest.approx(float(rb[1].split(",")[col]), abs=1e-5)  # two copies of one model = that model
    # members that read images differently are refused, naming the cause
    cfg = (other / "config.yaml").read_text().replace("- 24\n  - 16", "- 32\n  - 16")
    (other / "config.yaml").write_text(cfg)
    assert main(["ensemble", str(tiny_run), str(other), "--out", str(tmp_path / "bad")]) == 2
    assert "image_size" in capsys.readouterr().err


def test_ensemble_threshold_is_chosen_on_its_own_validation_probabilities(tiny_run, tmp_path):
    """Members on one split: the cut of the mean validation probability (not the mean of the cuts); other val sets: the mean."""
    import csv
    import shutil

    from scintix.evaluation.threshold import choose_threshold
    from scintix.runfolder import load_ensemble, load_run

    other = Path(shutil.copytree(tiny_run, tmp_path / "other"))
    f = other / "eval" / "val" / "predictions.csv"
    rows = list(csv.DictReader(open(f)))
    for r in rows:  # the other member is far less confident: its probabilities squared
        r["prob_abnormal"] = f"{float(r['prob_abnormal']) ** 2:.6f}"
        r["prob_normal"] = f"{1 - float(r['prob_abnormal']):.6f}"
    with open(f, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    own = {r["path"]: r for r in csv.DictReader(open(tiny_run / "eval" / "val" / "predictions.csv"))}
    y = np.array([r["target"] == "abnormal" for r in rows], int)
    mean_p = np.array([(float(own[r["path"]]["prob_abnormal"]) + float(r["prob_abnormal"])) / 2 for r in rows])
    assert main(["ensemble", str(tiny_run), str(other), "--out", str(tmp_path / "ens")]) == 0
    spec = json.loads((tmp_path / "ens" / "ensemble.json").read_text())
    assert spec["thresholds"]["abnormal"] == pytest.approx(choose_threshold(y, mean_p, "youden"), abs=1e-9)
    assert load_ensemble(tmp_path / "ens").thresholds == spec["thresholds"]
    with open(f, "w", newline="") as fh:  # validated on other images: no common set, so the members' mean threshold
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows[1:])
    assert main(["ensemble", str(tiny_run), str(other), "--out", str(tmp_path / "ens2")]) == 0
    assert "thresholds" not in json.loads((tmp_path / "ens2" / "ensemble.json").read_text())
    a, b = load_run(tiny_run).thresholds["abnormal"], load_run(other).thresholds["abnormal"]
    assert load_ensemble(tmp_path / "ens2").thresholds["abnormal"] == pytest.approx((a + b) / 2)
    spec["thresholds"] = {"abnormal": "high"}  # a damaged file is refused, not silently replaced
    (tmp_path / "ens" / "ensemble.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match="finite number"):
        load_ensemble(tmp_path / "ens")


def test_eval_tta_runs_through_evaluation(tiny_manifest, tmp_path):
    from scintix.config import load_config
    from scintix.training.run import train_run

    fast = ["model.name=small_cnn", "data.image_size=[24,16]", "train.batch_size=8", "train.channels_last=false", "train.tensorboard=false", "train.progress=false",
            "eval.n_bootstrap=20", "eval.figures=false", "data.views=null", "data.view_filter=ant", "data.split.ratios=[0.5,0.3,0.2]", "train.epochs=1"]
    run = train_run(load_config("quickstart", [f"data.source={tiny_manifest}", *fast, "eval.tta=[identity,shift]"]), tmp_path / "r")
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert np.isfinite(m["per_class"]["abnormal"]["roc_auc"]["value"])
    from scintix.runfolder import load_run

    assert isinstance(load_run(run).model, TTA)
