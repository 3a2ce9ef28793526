import json
import shutil
import subprocess

import pytest

from scintix.cli.__main__ import main

FAST = ["-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "train.batch_size=8", "-o", "train.channels_last=false",
        "-o", "train.tensorboard=false", "-o", "eval.n_bootstrap=50", "-o", "data.view_filter=null", "-o", "data.views=null", "-o", "data.split.ratios=[0.5,0.3,0.2]"]


@pytest.fixture(scope="module")
def evaluated_run(tiny_manifest_module, tmp_path_factory):
    run = tmp_path_factory.mktemp("report") / "run"
    assert main(["run", "--data", str(tiny_manifest_module), "--out", str(run), "--epochs", "2", *FAST]) == 0
    return run


def test_report_has_every_section_and_embeds_its_images(evaluated_run):
    assert main(["report", str(evaluated_run), "--gallery", "2", "--faithfulness-n", "4"]) == 0
    page = (evaluated_run / "report.html").read_text()
    for needle in ("Data and split", "Metrics (95% CI", "roc_auc", "Threshold chosen on validation", "Calibration", "ECE raw",
                   "Cases with heat maps", "Explanation faithfulness", "deletion AUC", "Training curves", "Model card", "Resolved configuration"):
        assert needle in page, needle
    assert page.count("data:image/png;base64,") >= 6  # ROC, PR, confusion, calibration per split + gallery + curves
    assert "src=\"http" not in page and "src='http" not in page  # self-contained
    faith = json.loads((evaluated_run / "eval" / "faithfulness.json").read_text())
    assert set(faith["methods"]) == {"gradcam", "gradcam++", "scorecam", "occlusion", "random"}
    assert all(0 <= v["deletion"] <= 1 and 0 <= v["insertion"] <= 1 for v in faith["methods"].values())
    card = (evaluated_run / "model_card.md").read_text()
    assert "## Intended use" in card and "## Limitations" in card
    auc = json.loads((evaluated_run / "eval" / "test" / "metrics.json").read_text())["per_class"]["abnormal"]["roc_auc"]
    assert f"roc_auc {auc['value']:.3f} [{auc['ci_low']:.3f}, {auc['ci_high']:.3f}]" in card  # the test metric with its CI, as measured
    assert "SYNTHETIC" not in page and "SYNTHETIC" not in card  # this test data carries no synthetic mark


def test_explain_command_writes_overlays_and_reports_bad_files(evaluated_run, tiny_manifest_module, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in sorted(tiny_manifest_module.parent.glob("p1_*.png")):
        shutil.copy(p, folder / p.name)
    (folder / "bad.png").write_bytes(b"junk")
    assert main(["explain", str(evaluated_run), str(folder), "--out", str(tmp_path / "maps"), "--method", "gradcam", "occlusion"]) == 1  # 1: bad.png failed, the rest written
    assert "bad.png" in capsys.readouterr().err
    pngs = sorted(p.name for p in (tmp_path / "maps").glob("*.png"))
    assert len(pngs) == 2 * len(list(folder.glob("p1_*.png"))) and any("occlusion" in p for p in pngs)
    assert main(["explain", str(evaluated_run), str(folder), "--out", str(tmp_path / "x"), "--target", "nonsense"]) == 2


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(evaluated_run, tmp_path):
    if not (evaluated_run / "report.html").is_file():
        main(["report", str(evaluated_run), "--gallery", "1", "--faithfulness-n", "2"])
    shot = tmp_path / "report.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2400",
         f"--screenshot={shot}", (evaluated_run / "report.html").resolve().as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2400, 1200)
    # a rendered page, not a blank one: plenty of non-white pixels (text, tables, figures)
    assert (img < 200).mean() > 0.01


def test_checkpoint_that_does_not_fit_is_a_one_line_error(evaluated_run, tmp_path, capsys):
    from scintix.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "old"
    shutil.copytree(evaluated_run, run)
    ck = load_checkpoint(run / "checkpoints" / "best.pt")
    ck["model"] = {k.replace("features.", "features.old_"): v for k, v in ck["model"].items()}  # an older layout's names
    save_checkpoint(ck, run / "checkpoints" / "best.pt")
    assert main(["evaluate", str(run)]) == 2
    err = capsys.readouterr().err
    assert "best.pt: checkpoint does not fit the model" in err and "Traceback" not in err


def test_the_card_names_intensity_augmentation_when_a_run_used_it(evaluated_run, tmp_path):
    import yaml

    from scintix.evaluation.card import write_model_card

    assert "intensity augmentation" not in (evaluated_run / "model_card.md").read_text()  # off by default: not mentioned
    run = tmp_path / "run"
    shutil.copytree(evaluated_run, run)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["augment"].update(noise=0.05, gamma=0.5, intensity_prob=0.3)
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    card = write_model_card(run).read_text()
    assert "intensity augmentation (nnU-Net's): noise 0.05, gamma 0.5, each on a share 0.3 of the training images" in card
