"""Conditional DCGAN: shapes, one step, training/resume, sampling as a dataset, training-only generated rows, quality metrics."""

import csv
import json

import numpy as np
import pytest
import torch

from scintix.cli.__main__ import main
from scintix.config import load_config
from scintix.synthesis.diffaug import diff_augment
from scintix.synthesis.gan import Discriminator, Generator, up_steps
from scintix.synthesis.quality import fid, kid, nearest_distances
from scintix.synthesis.train_gan import gan_step

GAN_FAST = ["data.image_size=[32,16]", "data.view_filter=ant", "data.views=null", "data.split.ratios=[0.5,0.3,0.2]", "train.progress=false",
            "gan.batch_size=4", "gan.base_channels=4", "gan.latent_dim=8", "gan.grid_per_class=2"]


@pytest.mark.parametrize("size", [(64, 64), (256, 64), (160, 64), (32, 16)])
@pytest.mark.parametrize("k", [0, 2, 3])
def test_generator_and_discriminator_shapes(size, k):
    torch.manual_seed(0)
    g, d = Generator(size, latent_dim=8, num_conditions=k, base=4), Discriminator(size, num_conditions=k, base=4)
    y = torch.tensor([[1.0, 0, 1], [0, 1, 1]])[:, :k] if k else None  # multi-hot works as a condition too
    x = g(torch.randn(2, 8), y)
    assert x.shape == (2, 1, *size) and x.abs().max() <= 1
    assert d(x, y).shape == (2,)


def test_sizes_that_do_not_fit_are_refused():
    assert up_steps((512, 128)) == 5
    for bad in [(68, 171), (60, 64), (64, 100)]:
        with pytest.raises(ValueError, match="shorter side must be 4 x 2"):
            up_steps(bad)


def test_one_step_changes_both_models_and_is_reproducible():
    cfg = load_config("quickstart", GAN_FAST)
    real = torch.rand(4, 1, 32, 16) * 2 - 1
    y = torch.eye(2)[[0, 1, 1, 0]]

    def step(seed):
        torch.manual_seed(seed)
        g, d = Generator((32, 16), 8, 2, 1, 4), Discriminator((32, 16), 2, 1, 4)
        before = [p.detach().clone() for p in (*g.parameters(), *d.parameters())]
        stats = gan_step(g, d, torch.optim.Adam(g.parameters(), 1e-3), torch.optim.Adam(d.parameters(), 1e-3), real, y, cfg)
        return g, d, before, stats

    g, d, before, stats = step(0)
    ng = len(list(g.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before[:ng], g.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before[ng:], d.parameters()))
    assert all(np.isfinite(v) for v in stats.values())
    g2, d2, _, stats2 = step(0)
    assert stats == stats2 and all(torch.equal(a, b) for a, b in zip(g.state_dict().values(), g2.state_dict().values()))


def test_d_steps_gives_that_many_discriminator_updates_per_generator_update(tiny_manifest, tmp_path):
    from scintix.synthesis.train_gan import train_gan

    def updates(d_steps):
        out = tmp_path / f"d{d_steps}"
        train_gan(load_config("quickstart", [f"data.source={tiny_manifest}", "gan.epochs=1", "gan.batch_size=2", f"gan.d_steps={d_steps}", *GAN_FAST[:-4],
                                             "gan.base_channels=4", "gan.latent_dim=8", "gan.grid_per_class=1"]), out)
        ck = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
        return [int(next(iter(ck[k]["state"].values()))["step"]) for k in ("opt_d", "opt_g")], ck["history"][0]

    (d1, g1), _ = updates(1)
    (d2, g2), row = updates(2)
    assert d1 == g1 == d2 >= 3 and g2 == d2 // 2 and np.isfinite(row["g_loss"])
    with pytest.raises(ValueError, match="gan.d_steps"):
        load_config("quickstart", ["gan.d_steps=0"])


def test_diff_augment_keeps_shape_and_empty_policy_is_identity():
    x = torch.rand(3, 1, 16, 8)
    assert torch.equal(diff_augment(x, ()), x)
    gen = torch.Generator().manual_seed(0)
    for p in ("color", "translation", "cutout"):
        assert diff_augment(x, [p], gen).shape == x.shape
    cut = diff_augment(x, ["cutout"], gen)
    changed = cut != x
    assert changed.any() and torch.equal(cut[changed], x.amin(dim=(1, 2, 3), keepdim=True).expand_as(x)[changed])  # the image's background
    scan = -torch.ones(1, 1, 16, 8)  # GAN range [-1, 1]: background -1, one bright square
    scan[..., 6:10, 2:6] = 1
    moved = diff_augment(scan, ["translation"], torch.Generator().manual_seed(3))
    assert not torch.equal(moved, scan) and moved.min() == -1 and (moved == 1).sum() <= 16  # filled with background, never invented
    cutout = diff_augment(scan, ["cutout"], torch.Generator().manual_seed(1))
    assert set(cutout.unique().tolist()) <= {-1.0, 1.0}  # no mid-grey patch


def test_minibatch_std_sees_a_collapsed_batch():
    from scintix.synthesis.gan import batch_std

    same = torch.randn(1, 3, 4, 2).repeat(8, 1, 1, 1)
    assert batch_std(same).shape == (8, 1, 4, 2) and batch_std(same).max() < 1e-3
    varied = torch.randn(8, 3, 4, 2)
    s = batch_std(varied)
    assert s.min() > 0.3 and torch.equal(s[0], s[2]) and not torch.equal(s[0], s[1])  # groups of 4: images 0, 2, 4, 6 together
    assert batch_std(torch.randn(3, 3, 4, 2)).unique().numel() == 1  # a batch not a multiple of 4: one group
    torch.manual_seed(0)
    d = Discriminator((32, 16), 2, 1, 4)
    y = torch.eye(2)[[0, 1, 0, 1]]
    x = torch.rand(1, 1, 32, 16).repeat(4, 1, 1, 1)
    assert not torch.allclose(d(x, y), d(x + 0.3 * torch.randn_like(x), y))
    assert Discriminator((32, 16), 2, 1, 4, minibatch_std=False)(x, y).shape == (4,)


def test_quality_metrics_by_hand():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 4))
    assert fid(a, a) == pytest.approx(0, abs=1e-6)
    assert abs(kid(a, rng.normal(size=(200, 4)))) < 0.05  # same distribution
    assert kid(a, rng.normal(size=(200, 4)) + 3) > 1  # shifted
    assert fid(a, a + 1) == pytest.approx(4.0, rel=1e-6)  # |mu diff|^2, same covariance
    x = np.array([[0.0, 0.0], [1.0, 1.0]])
    k = kid(x, x)  # hand: kxx offdiag = (0/2+1)^3 = 1, kab = [[1, 1], [1, 8]] -> 1 + 1 - 2 * 11/4
    assert k == pytest.approx(1 + 1 - 2 * 11 / 4)
    idx, dist = nearest_distances(np.array([[[0.0, 0.0]], [[1.0, 0.5]]]), np.array([[[1.0, 1.0]], [[0.0, 0.2]]]))
    assert idx.tolist() == [1, 0] and dist == pytest.approx([np.sqrt(0.04 / 2), np.sqrt(0.25 / 2)])


def test_train_resume_sample_and_train_a_classifier_on_real_plus_generated(tiny_manifest, tmp_path, tiny_run):
    over = [x for o in GAN_FAST for x in ("-o", o)]
    assert main(["gan", "train", str(tiny_manifest), "--out", str(tmp_path / "gan"), "--epochs", "2", *over]) == 0
    straight = torch.load(tmp_path / "gan" / "checkpoints" / "last.pt", weights_only=True)
    from scintix.synthesis.train_gan import train_gan

    train_gan(load_config("quickstart", [f"data.source={tiny_manifest}", "gan.epochs=2", *GAN_FAST]), tmp_path / "cut", max_epochs=1)
    assert main(["gan", "train", str(tiny_manifest), "--out", str(tmp_path / "cut"), "--resume"]) == 0
    resumed = torch.load(tmp_path / "cut" / "checkpoints" / "last.pt", weights_only=True)
    assert all(torch.equal(straight["model"][k], resumed["model"][k]) for k in straight["model"])  # resumed = uninterrupted
    assert (tmp_path / "gan" / "samples" / "epoch_002.png").is_file() and len(straight["history"]) == 2

    assert main(["gan", "sample", str(tmp_path / "gan"), "--out", str(tmp_path / "gen"), "--per-class", "abnormal=6", "normal=2"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "gen" / "manifest.csv")))
    assert [r["label"] for r in rows] == ["abnormal"] * 6 + ["normal"] * 2 and {r["generated"] for r in rows} == {"1"} and rows[0]["view"] == "ant"
    assert rows[0]["generator_run"] == str((tmp_path / "gan").resolve()) and rows[0]["synthetic"] == "0"

    clf = ["-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "train.batch_size=8", "-o", "train.channels_last=false", "-o", "train.tensorboard=false",
           "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false", "-o", "data.views=null", "-o", "data.view_filter=ant", "-o", "train.progress=false", "--epochs", "1"]
    same_split = ["-o", f"data.split.file={tmp_path / 'gan' / 'split.csv'}"]
    gen = ["-o", f"data.generated=[{tmp_path / 'gen' / 'manifest.csv'}]"]
    assert main(["run", "--data", str(tiny_manifest), "--out", str(tmp_path / "clf"), *clf, *same_split, *gen, "-o", "data.generated_ratio=1.0"]) == 0
    summary = json.loads((tmp_path / "clf" / "data_summary.json").read_text())
    g = summary["generated"]
    assert g["real_train_images"] == summary["splits"]["train"]["samples"] - g["train_images"] == 7
    assert g["train_images"] == 7  # ratio 1.0: 8 generated capped at the 7 real training images
    assert g["class_counts"] == {"abnormal": 5, "normal": 2}  # in proportion to what was generated: 6:2 of 7 -> 5.25:1.75, the larger remainder rounds up
    assert summary["synthetic"] is False and summary["splits"]["val"]["samples"] + summary["splits"]["test"]["samples"] + g["real_train_images"] == 12  # the 12 real anterior views; val/test real only
    assert "generated" not in (tmp_path / "clf" / "split.csv").read_text()  # the split file holds real images only
    card = (tmp_path / "clf" / "model_card.md").read_text() if (tmp_path / "clf" / "model_card.md").is_file() else None
    if card is None:
        assert main(["report", str(tmp_path / "clf")]) == 0
        card = (tmp_path / "clf" / "model_card.md").read_text()
    assert "7 of the 14 training images were made by a GAN" in card and "SYNTHETIC" not in card

    # a generator that learned from patients of this run's val/test is refused, naming the cause
    assert main(["run", "--data", str(tiny_manifest), "--out", str(tmp_path / "leak"), *clf, "-o", "data.split.seed=7", *gen]) == 2
    # generated rows assigned to val/test by their manifest are refused
    text = (tmp_path / "gen" / "manifest.csv").read_text().splitlines()
    (tmp_path / "gen" / "manifest.csv").write_text("\n".join([text[0] + ",split", *(line + (",test" if i == 0 else ",") for i, line in enumerate(text[1:]))]) + "\n")
    assert main(["run", "--data", str(tiny_manifest), "--out", str(tmp_path / "bad"), *clf, *same_split, *gen]) == 2

    res = __import__("scintix.synthesis.quality", fromlist=["quality_report"]).quality_report(tmp_path / "gan", tmp_path / "gen", tiny_run)
    assert set(res["per_class"]) == {"normal", "abnormal"} and res["per_class"]["abnormal"]["real"] > 0 and res["nearest"]["real_median_distance"] > 0 and (tmp_path / "gen" / "quality" / "nearest.html").is_file()


def test_two_view_generator_writes_view_pairs_that_a_two_view_run_stacks(tiny_manifest, tmp_path):
    views = ["-o", "data.views=[ant,post]", "-o", "data.view_filter=null"]
    over = [x for o in GAN_FAST if not o.startswith("data.view") for x in ("-o", o)]
    assert main(["gan", "train", str(tiny_manifest), "--out", str(tmp_path / "gan"), "--epochs", "1", *over, *views]) == 0
    assert main(["gan", "sample", str(tmp_path / "gan"), "--out", str(tmp_path / "gen"), "--per-class", "abnormal=3"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "gen" / "manifest.csv")))
    assert len(rows) == 6 and [r["view"] for r in rows[:2]] == ["ant", "post"] and rows[0]["patient_id"] == rows[1]["patient_id"]
    clf = ["-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "train.batch_size=8", "-o", "train.channels_last=false", "-o", "train.tensorboard=false",
           "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false", "-o", "train.progress=false", "--epochs", "1", "-o", f"data.split.file={tmp_path / 'gan' / 'split.csv'}"]
    assert main(["run", "--data", str(tiny_manifest), "--out", str(tmp_path / "clf"), *clf, *views, "-o", f"data.generated=[{tmp_path / 'gen' / 'manifest.csv'}]",
                 "-o", "data.generated_ratio=0.3"]) == 0
    g = json.loads((tmp_path / "clf" / "data_summary.json").read_text())["generated"]
    assert g["train_images"] == 2 == round(0.3 * g["real_train_images"])  # generated patients (view pairs), capped at 0.3 x 7 real training patients


def test_augmentation_probability_reaches_a_share_of_the_images():
    x = torch.rand(64, 1, 16, 8)
    assert torch.equal(diff_augment(x, ["color", "cutout"], torch.Generator().manual_seed(0), p=0.0), x)
    always = diff_augment(x, ["color", "cutout"], torch.Generator().manual_seed(0))
    assert torch.equal(diff_augment(x, ["color", "cutout"], torch.Generator().manual_seed(0), p=1.0), always)  # p = 1: DiffAugment as before
    half = diff_augment(x, ["color"], torch.Generator().manual_seed(0), p=0.5)
    untouched = (half == x).flatten(1).all(1)
    assert 10 < int(untouched.sum()) < 54 and not (half[~untouched] == x[~untouched]).flatten(1).all(1).any()


def test_ada_controller_follows_the_sign_of_real_scores_and_resumes_exactly():
    from scintix.synthesis.diffaug import AdaptiveProbability

    ada = AdaptiveProbability(target=0.6, kimg=1.0, interval=4)  # 1,000 images to cross 0 -> 1
    for _ in range(3):
        assert ada.update(1.0, 32) == 0.0  # adjusted only every 4 updates
    assert ada.update(1.0, 32) == pytest.approx(0.128)  # overfitting (r = 1 > 0.6): +128 images / 1,000
    for _ in range(4):
        ada.update(0.8, 32)
    assert ada.p == pytest.approx(0.256)
    copy_ = AdaptiveProbability(target=0.6, kimg=1.0, interval=4)
    ada.update(0.0, 32)
    copy_.load_state_dict(ada.state_dict())  # mid-interval
    for a in (ada, copy_):
        for _ in range(3):
            a.update(0.0, 32)  # r = 0 < 0.6: the discriminator is not overfitting, p falls
    assert ada.p == copy_.p == pytest.approx(0.128)
    for _ in range(40):
        ada.update(-1.0, 32)
    assert ada.p == 0.0  # clipped
    with pytest.raises(ValueError, match="ada_target"):
        load_config("quickstart", ["gan.ada_target=1.5"])
    with pytest.raises(ValueError, match="nothing to adapt"):
        load_config("quickstart", ["gan.ada_target=0.6", "gan.diffaug=[]"])


def test_gan_with_adaptive_augmentation_logs_p_and_resumes_exactly(tiny_manifest, tmp_path, monkeypatch):
    import scintix.synthesis.train_gan as tg
    from scintix.synthesis.diffaug import AdaptiveProbability

    ada = ["gan.ada_target=0.6", "gan.ada_kimg=0.02", "gan.batch_size=2"]  # 20 images per unit of p: every adjustment is visible
    cfg = load_config("quickstart", [f"data.source={tiny_manifest}", "gan.epochs=2", *GAN_FAST, *ada])
    seen, d_step = [], tg.d_step

    def recording(*args, **kw):
        stats = d_step(*args, **kw)
        seen.append((args[-1], stats["d_real_sign"], len(args[3])))  # the p it was given, the sign it measured, batch size
        return stats

    monkeypatch.setattr(tg, "d_step", recording)
    straight = torch.load(tg.train_gan(cfg, tmp_path / "straight") / "checkpoints" / "last.pt", weights_only=True)
    replay = AdaptiveProbability(0.6, 0.02)
    for p, sign, n in seen:  # each update used the controller's current p, and fed its real scores' sign back
        assert p == replay.p
        replay.update(sign, n)
    assert len(seen) >= 4 and replay.state_dict() == straight["ada"]
    rows = straight["history"]
    assert [r["ada_p"] for r in rows][-1] == round(straight["ada"]["p"], 5) and all(-1 <= r["d_real_sign"] <= 1 for r in rows)
    tg.train_gan(cfg, tmp_path / "cut", max_epochs=1)
    resumed = torch.load(tg.train_gan(None, tmp_path / "cut", resume=True) / "checkpoints" / "last.pt", weights_only=True)
    assert straight["ada"] == resumed["ada"] and all(torch.equal(straight["model"][k], resumed["model"][k]) for k in straight["model"])
