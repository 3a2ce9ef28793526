"""SRGAN: output sizes, PSNR/SSIM against hand-computed values, training + evaluation + up-sampling files end to end."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scintix.cli.__main__ import main
from scintix.synthesis.srgan import (
    SRDiscriminator,
    SRGenerator,
    bicubic,
    downsample,
    psnr,
    ssim,
)


@pytest.mark.parametrize("scale", [2, 4])
def test_sr_output_is_scale_times_the_input_and_starts_as_bicubic(scale):
    torch.manual_seed(0)
    g = SRGenerator(scale, features=8, blocks=2)
    x = torch.rand(2, 1, 12, 8)
    y = g(x)
    assert y.shape == (2, 1, 12 * scale, 8 * scale)
    assert torch.allclose(y, bicubic(x, scale))  # the residual starts at zero
    assert SRDiscriminator(base=4)(y).shape == (2,)
    assert downsample(y, scale).shape == x.shape
    with pytest.raises(ValueError, match="scale 3"):
        SRGenerator(3)


def test_psnr_and_ssim_match_hand_computed_values():
    a, b = torch.full((1, 1, 16, 16), 0.2), torch.full((1, 1, 16, 16), 0.6)
    assert psnr(a, b).item() == pytest.approx(10 * math.log10(1 / 0.16), rel=1e-5)  # MSE 0.16
    c1 = 0.01**2  # constant images: contrast/structure terms are 1, luminance (2 mu_a mu_b + C1) / (mu_a^2 + mu_b^2 + C1)
    assert ssim(a, b).item() == pytest.approx((2 * 0.2 * 0.6 + c1) / (0.2**2 + 0.6**2 + c1), rel=1e-4)
    x = torch.rand(1, 1, 16, 16)
    assert ssim(x, x).item() == pytest.approx(1.0, abs=1e-5) and math.isinf(psnr(x, x).item())


def test_sr_train_evaluate_and_apply(tiny_manifest, tmp_path, tiny_run, capsys):
    over = ["-o", "data.image_size=[24,16]", "-o", "data.views=null", "-o", "data.view_filter=null", "-o", "data.split.ratios=[0.5,0.3,0.2]", "-o", "train.progress=false",
            "-o", "sr.features=8", "-o", "sr.blocks=1", "-o", "sr.batch_size=8"]
    assert main(["sr", "train", str(tiny_manifest), "--out", str(tmp_path / "sr"), "--scale", "2", "--epochs", "2", "--features", str(tiny_run), *over]) == 0
    out = capsys.readouterr().out
    assert "PSNR SR" in out and "SR - bicubic" in out
    res = json.loads((tmp_path / "sr" / "eval_test.json").read_text())
    assert res["images"] > 0 and np.isfinite(res["sr_psnr"]) and res["psnr_difference"]["ci_low"] <= res["psnr_difference"]["value"] <= res["psnr_difference"]["ci_high"]
    meta = json.loads((tmp_path / "sr" / "meta.json").read_text())
    assert str(tiny_run) in meta["perceptual_features"]
    Image.fromarray(np.random.default_rng(0).integers(0, 200, (10, 6)).astype(np.uint8)).save(tmp_path / "small.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert main(["sr", str(tmp_path / "sr"), str(tmp_path / "small.png"), str(tmp_path / "broken.png"), "--out", str(tmp_path / "up")]) == 2  # one input failed
    out = capsys.readouterr().out
    assert "broken.png: error:" in out
    assert np.asarray(Image.open(tmp_path / "up" / "small_sr_x2.png")).shape == (20, 12)


def test_p3_dcgan_then_srgan_sampling(tiny_manifest, tmp_path):
    common = ["-o", "data.views=null", "-o", "data.view_filter=ant", "-o", "data.split.ratios=[0.5,0.3,0.2]", "-o", "train.progress=false"]
    assert main(["gan", "train", str(tiny_manifest), "--out", str(tmp_path / "gan"), "--epochs", "1", "-o", "data.image_size=[32,16]", *common,
                 "-o", "gan.batch_size=4", "-o", "gan.base_channels=4", "-o", "gan.latent_dim=8"]) == 0
    assert main(["sr", "train", str(tiny_manifest), "--out", str(tmp_path / "sr"), "--scale", "2", "--epochs", "1", "-o", "data.image_size=[64,32]", *common,
                 "-o", "sr.features=4", "-o", "sr.blocks=1"]) == 0
    assert main(["gan", "sample", str(tmp_path / "gan"), "--out", str(tmp_path / "gen"), "--n", "4", "--sr", str(tmp_path / "sr")]) == 0
    assert np.asarray(Image.open(tmp_path / "gen" / "images" / "gen_00000.png")).shape == (64, 32)  # 32x16 generated, x2 super-resolved
    assert json.loads((tmp_path / "gen" / "provenance.json").read_text())["written_size"] == [64, 32]


def test_classifier_auc_on_sr_images_matches_its_own_test_auc(tiny_run, tmp_path, capsys):
    """The classifier's AUC on the SR run's original test images is its own test AUC (same patients, same images)."""
    same = ["-o", "data.image_size=[24,16]", "-o", "data.views=null", "-o", "data.view_filter=ant", "-o", "data.split.ratios=[0.5,0.3,0.2]", "-o", "train.progress=false",
            "-o", "sr.features=4", "-o", "sr.blocks=1", "-o", "sr.batch_size=4"]
    manifest = tiny_run.parent / "manifest.csv"
    sr = tmp_path / "sr"
    assert main(["sr", "train", str(manifest), "--out", str(sr), "--scale", "2", "--epochs", "1", *same, "-o", f"data.split.file={tiny_run / 'split.csv'}"]) == 0
    assert main(["sr", "evaluate", str(sr), "--classifier", str(tiny_run)]) == 0
    assert "classifier AUC" in capsys.readouterr().out
    res = json.loads((sr / "eval_test_classifier.json").read_text())
    own = json.loads((tiny_run / "eval" / "test" / "metrics.json").read_text())["per_class"]
    (name, entry), = res["per_class"].items()
    assert entry["auc_original"] == pytest.approx(own[name]["roc_auc"]["value"], abs=1e-6)
    for k in ("sr_minus_original", "bicubic_minus_original", "sr_minus_bicubic"):
        assert entry[k]["ci_low"] <= entry[k]["value"] <= entry[k]["ci_high"]
    assert entry["sr_minus_bicubic"]["value"] == pytest.approx(entry["auc_sr"] - entry["auc_bicubic"])
    # an SR run whose test patients the classifier trained on is refused, naming the cause
    import shutil

    other = Path(shutil.copytree(sr, tmp_path / "sr_other_split"))
    rows = (other / "split.csv").read_text().splitlines()
    (other / "split.csv").write_text("\n".join([rows[0]] + [r.replace(",train,", ",test,").replace(",val,", ",test,") for r in rows[1:]]) + "\n")
    assert main(["sr", "evaluate", str(other), "--classifier", str(tiny_run)]) != 0
    assert "in the classifier's train/val split" in capsys.readouterr().err
