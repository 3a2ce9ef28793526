"""BatchNorm statistics match the trained weights: the eval-mode model is the model that was trained."""

import copy
import json

import numpy as np
import pytest
import torch
from torch import nn

from scintix.checkpoint import load_checkpoint
from scintix.config import load_config
from scintix.data.datasets import CachedDataset, build_samples
from scintix.data.manifest import read_manifest
from scintix.models import create_model
from scintix.training.batchnorm import (
    frozen_batchnorm,
    has_batchnorm,
    recompute_batchnorm,
)
from scintix.training.run import train_run

FAST = [
    "model.name=small_cnn", "data.image_size=[24,16]", "train.batch_size=8", "train.channels_last=false", "train.precision=fp32",
    "train.tensorboard=false", "train.progress=false", "eval.n_bootstrap=20", "eval.figures=false", "data.classes=null", "data.view_filter=null", "data.views=null",
    "train.early_stop_patience=0", "data.split.ratios=[0.5,0.3,0.2]", "train.epochs=2", "augment.enabled=false",
]


def test_recompute_gives_the_exact_statistics_and_restores_the_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2, momentum=0.3))
    model.train()
    batches = [torch.rand(5, 1, 8, 6) * (i + 1) for i in range(3)]
    n = recompute_batchnorm(model, iter(batches))
    assert n == 3 and model.training and model[1].momentum == 0.1 and model[5].momentum == 0.3
    with torch.no_grad():
        feats = [model[0](b) for b in batches]
    # the cumulative average of per-batch statistics, as each batch was normalised in training
    mean = torch.stack([f.mean((0, 2, 3)) for f in feats]).mean(0)
    var = torch.stack([f.var((0, 2, 3), unbiased=True) for f in feats]).mean(0)
    assert torch.allclose(model[1].running_mean, mean, atol=1e-6) and torch.allclose(model[1].running_var, var, rtol=1e-5)
    before = copy.deepcopy(model.state_dict())
    assert recompute_batchnorm(model, iter([])) == 0  # nothing to average: left as it was
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not has_batchnorm(nn.Sequential(nn.Conv2d(1, 1, 1))) and has_batchnorm(model)


def test_frozen_batchnorm_keeps_its_statistics_in_training_and_in_precise_bn():
    """A BatchNorm whose scale and shift are frozen is frozen whole: eval mode in the training loop, skipped by precise BN."""
    from scintix.training.loop import train_one_epoch

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))
    for p in [*model[0].parameters(), *model[1].parameters()]:
        p.requires_grad_(False)
    assert frozen_batchnorm(model) == [model[1]]
    frozen0, trained0 = model[1].running_mean.clone(), model[4].running_mean.clone()
    batches = [torch.rand(6, 1, 10, 8) * 3 + 1 for _ in range(3)]
    assert recompute_batchnorm(model, iter(batches)) == 3
    assert torch.equal(model[1].running_mean, frozen0) and not torch.equal(model[4].running_mean, trained0)
    loader = [{"image": b, "target": torch.tensor([0, 1] * 3)} for b in batches]
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    train_one_epoch(model, nn.CrossEntropyLoss(), opt, loader, torch.device("cpu"), task="binary")
    assert torch.equal(model[1].running_mean, frozen0) and model[1].num_batches_tracked == 0 and model[4].num_batches_tracked > 0
    assert model.training and not model[1].training  # the rest trains


@pytest.fixture
def scan_like(tmp_path):
    """40 patients, one 24x16 view each: dark noisy background, a bright blob for abnormal (1 in 3)."""
    from PIL import Image

    rng = np.random.default_rng(7)
    rows = ["path,label,patient_id"]
    for p in range(40):
        img = rng.integers(0, 40, size=(24, 16)).astype(np.uint8)
        label = int(p % 3 == 0)
        if label:
            y, x = rng.integers(4, 18), rng.integers(3, 11)
            img[y : y + 4, x : x + 4] = 250
        Image.fromarray(img).save(tmp_path / f"p{p}.png")
        rows.append(f"p{p}.png,{label},P{p}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "manifest.csv"


def _gap_on_training_images(run, manifest) -> float:
    """Independent of the run's own guard: train-mode vs eval-mode probabilities of the saved best model."""
    cfg = load_config("quickstart", [f"data.source={manifest}", *FAST])
    split = {r["path"]: r["split"] for r in __import__("csv").DictReader(open(run / "split.csv"))}
    records = read_manifest(manifest)
    train = [r for r in records if split.get(r.path) == "train"]
    samples = build_samples(train, np.array([int(r.label) for r in train]))
    x = torch.as_tensor(CachedDataset(samples, tuple(cfg.data.image_size), cfg.data.normalize).images)
    model = create_model("small_cnn", in_channels=1, num_classes=2)
    model.load_state_dict(load_checkpoint(run / "checkpoints" / "best.pt")["model"])
    with torch.no_grad():
        p_eval = torch.softmax(model.eval()(x), 1)
        p_train = torch.softmax(model.train()(x), 1)  # BatchNorm by these images' own statistics (dropout: the model has none active here)
    return float((p_eval - p_train).abs().mean())


def test_a_short_run_gives_an_eval_mode_model_close_to_its_train_mode(scan_like, tmp_path):
    # A few optimiser steps on scan-like images (dark background, intensities in [0, 1]): BatchNorm's running
    # variance starts at 1.0, far above the real one, and 0.9 ** steps of that start value is still in the average.
    run = train_run(load_config("quickstart", [f"data.source={scan_like}", *FAST]), tmp_path / "fixed")
    stale = train_run(load_config("quickstart", [f"data.source={scan_like}", *FAST, "train.precise_bn=false"]), tmp_path / "stale")
    gap, stale_gap = _gap_on_training_images(run, scan_like), _gap_on_training_images(stale, scan_like)
    # Tolerance: with recomputed statistics the two modes differ only by batch-vs-population statistics of the same
    # images (sampling noise, a few hundredths); the stale model is off by tenths.
    assert gap < 0.05, gap
    assert stale_gap > 0.15, stale_gap
    health = json.loads((run / "eval" / "health.json").read_text())
    assert health["checks"]["train_eval_gap"] < 0.1 and health["selection"]["precise_bn_batches"] >= 1
    stale_health = json.loads((stale / "eval" / "health.json").read_text())
    assert "train_eval_gap" in {f["check"] for f in stale_health["flags"]}


def test_selection_by_loss_or_by_metric_among_well_fitted_epochs(scan_like, tmp_path):
    import csv

    def history(run):
        return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(run / "history.csv"))]

    run = train_run(load_config("quickstart", [f"data.source={scan_like}", *FAST, "train.epochs=4", "train.select_metric=loss"]), tmp_path / "loss")
    h = history(run)
    sel = json.loads((run / "eval" / "health.json").read_text())["selection"]
    assert sel["criterion"] == "loss" and sel["epoch"] == min(h, key=lambda r: r["val_loss"])["epoch"]
    assert "selected epoch" in (run / "eval" / "metrics_table.txt").read_text() and "by validation loss" in (run / "model_card.md").read_text()
    run = train_run(load_config("quickstart", [f"data.source={scan_like}", *FAST, "train.epochs=4", "train.select_max_loss_ratio=1.2"]), tmp_path / "ratio")
    h = history(run)
    sel = json.loads((run / "eval" / "health.json").read_text())["selection"]
    lowest_so_far = min(r["val_loss"] for r in h[: sel["epoch"]])
    assert sel["val_loss"] <= 1.2 * lowest_so_far and sel["max_loss_ratio"] == 1.2
    with pytest.raises(ValueError, match="select_metric"):
        train_run(load_config("quickstart", [f"data.source={scan_like}", *FAST, "train.select_metric=dice"]), tmp_path / "bad")


def test_select_last_ships_the_final_epoch_without_early_stopping(scan_like, tmp_path):
    import torch

    # patience 1 and a tight loss ratio would stop or skip epochs under any other criterion: "last" ignores both
    run = train_run(load_config("quickstart", [f"data.source={scan_like}", *FAST, "train.epochs=3", "train.select_metric=last",
                                               "train.early_stop_patience=1", "train.select_max_loss_ratio=1.01"]), tmp_path / "last")
    assert len((run / "history.csv").read_text().strip().splitlines()) == 1 + 3
    sel = json.loads((run / "eval" / "health.json").read_text())["selection"]
    assert sel["criterion"] == "last" and sel["epoch"] == 3
    best = torch.load(run / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)["model"]
    last = torch.load(run / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)["model"]
    assert best.keys() == last.keys() and all(torch.equal(best[k], last[k]) for k in best)
    assert "no checkpoint selection" in (run / "model_card.md").read_text()
