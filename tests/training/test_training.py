import json
from pathlib import Path

import numpy as np
import pytest
import torch

from scintix.checkpoint import load_checkpoint, save_checkpoint
from scintix.config import load_config
from scintix.runtime import choose_channels_last, resolve_precision
from scintix.training.run import train_run

FAST = [
    "model.name=small_cnn", "data.image_size=[24,16]", "train.batch_size=8", "train.channels_last=false",
    "train.precision=fp32", "train.tensorboard=false", "train.progress=false", "eval.n_bootstrap=50", "eval.figures=false",
    "data.classes=null", "data.view_filter=null", "data.views=null", "train.early_stop_patience=0", "data.split.ratios=[0.5,0.3,0.2]",
]


def _cfg(manifest, *extra):
    return load_config("quickstart", [f"data.source={manifest}", *FAST, *extra])


def test_resume_after_interruption_gives_the_same_weights(tiny_manifest, tmp_path):
    cfg = _cfg(tiny_manifest, "train.epochs=3", "train.ema=0.9")  # the weight average resumes too
    train_run(cfg, tmp_path / "straight")
    train_run(cfg, tmp_path / "cut", max_epochs=1)  # "killed" after epoch 1
    assert not (tmp_path / "cut" / "eval").exists()
    train_run(None, tmp_path / "cut", resume=True)
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")
    assert a["state"]["epoch"] == b["state"]["epoch"] == 3
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
        assert torch.equal(a["ema"][k], b["ema"][k]), k
    assert a["state"]["ema_steps"] == b["state"]["ema_steps"] > 0
    assert (tmp_path / "cut" / "eval" / "test" / "metrics.json").exists()
    assert not list((tmp_path / "cut").rglob("*.png"))  # eval.figures=false: metrics and predictions, no figures


def test_run_folder_contents(tiny_manifest, tmp_path):
    run = train_run(_cfg(tiny_manifest, "train.epochs=1", "eval.figures=true"), tmp_path / "r")
    for f in ("config.yaml", "meta.json", "split.csv", "data_summary.json", "history.csv", "checkpoints/best.pt", "checkpoints/last.pt",
              "eval/thresholds.json", "eval/val/metrics.json", "eval/test/roc.png", "eval/test/pr.png", "eval/test/confusion.png",
              "eval/test/reliability.png", "eval/test/predictions.csv"):
        assert (run / f).exists(), f
    summary = json.loads((run / "data_summary.json").read_text())
    assert len(summary["duplicate_groups"]) == 2  # patient 11 is a copy of patient 0, both views
    assert summary["leakage"] == {"patients_in_several_splits": [], "duplicate_images_across_splits": 0}
    meta = json.loads((run / "meta.json").read_text())
    assert meta["seed"] == 0 and meta["scintix_version"]
    from importlib import metadata

    env = meta["environment"]  # what else decides a run's numbers: package versions, CPU, threads
    assert env["packages"]["monai"] == metadata.version("monai") and env["packages"]["torch"] == metadata.version("torch")
    assert env["threads"] >= 1 and env["python"] and "cuda_device" in env
    thr = json.loads((run / "eval" / "thresholds.json").read_text())
    assert thr["chosen_on"] == "val"
    with pytest.raises(FileExistsError):
        train_run(_cfg(tiny_manifest, "train.epochs=1"), run)


def test_two_view_patient_model(tiny_manifest, tmp_path):
    run = train_run(_cfg(tiny_manifest, "train.epochs=1", "data.views=[ant,post]"), tmp_path / "r")
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    summary = json.loads((run / "data_summary.json").read_text())
    assert sum(s["samples"] for s in summary["splits"].values()) == 12  # one sample per patient
    assert m["n"] == m["patients"]


def test_atomic_checkpoint(tmp_path):
    save_checkpoint({"model": {}, "x": torch.ones(2)}, tmp_path / "c.pt")
    assert torch.equal(load_checkpoint(tmp_path / "c.pt")["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


def test_precision_auto_never_picks_slow_cpu_bf16(monkeypatch):
    import scintix.runtime as perf

    monkeypatch.setattr(perf, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", torch.device("cpu")) is None
    monkeypatch.setattr(perf, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", torch.device("cpu")) is torch.bfloat16
    with pytest.raises(ValueError):
        resolve_precision("fp16", torch.device("cpu"))


def test_channels_last_setting():
    m = torch.nn.Conv2d(1, 2, 3)
    assert choose_channels_last("false", m, torch.zeros(1, 1, 8, 8), lambda m, x: None) is False
    assert choose_channels_last(True, m, torch.zeros(1, 1, 8, 8), lambda m, x: None) is True
    import time

    def slow_when(slow_layout_is_cl: bool):  # a step whose cost depends on the layout: auto must pick the other one
        def step(model, x):
            if (not x.is_contiguous()) == slow_layout_is_cl:  # 3 channels: NHWC is not NCHW-contiguous
                time.sleep(0.02)
        return step

    x = torch.zeros(1, 3, 8, 8)
    m = torch.nn.Conv2d(3, 2, 3)
    assert choose_channels_last("auto", m, x, slow_when(True)) is False  # NHWC slow -> NCHW
    assert choose_channels_last("auto", m, x, slow_when(False)) is True  # NCHW slow -> NHWC
    with pytest.raises(ValueError, match="auto, true or false"):
        choose_channels_last("sometimes", m, x, slow_when(True))

    calls = []

    def burst_on_nhwc(model, x):  # NHWC is faster, but one of its timed steps is hit by a burst of load
        calls.append(x.is_contiguous())
        nhwc = not x.is_contiguous()
        time.sleep(0.01 if nhwc else 0.05)  # a gap well above scheduling jitter on a loaded 2-core machine
        if nhwc and calls.count(False) == 2:  # the first timed NHWC step
            time.sleep(0.2)

    assert choose_channels_last("auto", m, x, burst_on_nhwc) is True  # the median ignores the burst
    assert calls[2:8] == [True, False] * 3  # layouts alternate after one warm-up each


def test_random_augmentation_only_on_train(tiny_manifest, tmp_path):
    from scintix.data.prepare import prepare_data
    from scintix.training.data import build_datasets
    from scintix.transforms.batch_augment import BatchAugmenter

    for batched in (False, True):  # per sample in the dataset, or per batch in the loop (the default)
        cfg = _cfg(tiny_manifest, "augment.prob=1.0", f"augment.batched={str(batched).lower()}")
        data = prepare_data(cfg, tmp_path / str(batched))
        ds = build_datasets(cfg, data)
        assert ds["train"].augment is not None and ds["val"].augment is None and ds["test"].augment is None
        assert ds["train"].batch_augment is batched and not ds["val"].batch_augment
        x1 = ds["val"][0]["image"]
        ds["val"].set_epoch(5)
        assert torch.equal(x1, ds["val"][0]["image"]) and "aug_seed" not in ds["val"][0]
        aug = BatchAugmenter(cfg.augment)

        def seen(epoch):  # the image the model trains on
            ds["train"].set_epoch(epoch)
            item = ds["train"][0]
            return aug({"image": item["image"][None], "aug_seed": [item["aug_seed"]]})["image"][0] if batched else item["image"]

        a = seen(0)
        assert not torch.equal(a, seen(1))  # a new epoch, a new augmentation
        assert torch.equal(a, seen(0))  # ... and the same one replayed


def test_kfold_run_uses_the_requested_fold(tiny_manifest, tmp_path):
    run = train_run(_cfg(tiny_manifest, "train.epochs=1", "data.split.folds=3", "data.split.fold=1", "data.split.ratios=[0.7,0.2,0.1]"), tmp_path / "k")
    import csv

    folds = {r["path"]: r["split"] for r in csv.DictReader(open(run / "folds.csv"))}
    split = {r["path"]: r["split"] for r in csv.DictReader(open(run / "split.csv"))}
    assert {p for p, f in folds.items() if f == "1"} == {p for p, s in split.items() if s == "val"}
    assert "3-fold" in json.loads((run / "data_summary.json").read_text())["split_method"]


def test_multilabel_run(tmp_path, multilabel_manifest):
    cfg = _cfg(multilabel_manifest, "train.epochs=2", "data.task=multilabel", "data.classes=[metastasis,arthritis,normal]")
    run = train_run(cfg, tmp_path / "run")
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert set(m["per_class"]) == {"metastasis", "arthritis", "normal"} and "macro" in m
    import csv

    row = next(csv.DictReader(open(run / "eval" / "test" / "predictions.csv")))
    assert {"prob_metastasis", "prob_arthritis", "prob_normal"} <= set(row)


def test_frozen_backbone_stays_fixed_then_unfreezes(tiny_manifest, tmp_path):
    from scintix.models import create_model

    torch.manual_seed(0)
    init = create_model("small_cnn").state_dict()
    run = train_run(_cfg(tiny_manifest, "train.epochs=1", "model.freeze_backbone=true"), tmp_path / "frozen")
    trained = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    params = [k for k in init if k.endswith("weight") or k.endswith("bias")]
    assert all(torch.equal(init[k], trained[k]) for k in params if not k.startswith("fc."))
    assert not torch.equal(init["fc.weight"], trained["fc.weight"])
    run = train_run(_cfg(tiny_manifest, "train.epochs=2", "model.freeze_backbone=true", "model.unfreeze_epoch=1"), tmp_path / "unfrozen")
    trained = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    assert not torch.equal(init["features.0.0.weight"], trained["features.0.0.weight"])


def test_cross_feature_image_arrives_from_the_manifest(tiny_manifest, tmp_path):
    """P3's model declares a 'cross' input; a cross_path column feeds it through the normal data path, no special case."""
    import csv as _csv

    from scintix.data.prepare import prepare_data
    from scintix.training.data import build_datasets
    from scintix.training.loop import forward

    rows = list(_csv.DictReader(open(tiny_manifest)))
    for r in rows:  # each image's cross-feature image: the other view of the same patient
        r["cross_path"] = r["path"].replace("_ant", "_TMP").replace("_post", "_ant").replace("_TMP", "_post")
    with open(tiny_manifest, "w", newline="") as fh:
        w = _csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cfg = _cfg(tiny_manifest, "model.name=resnet_crossfeature", "train.epochs=1")
    data = prepare_data(cfg, tmp_path / "prep")
    item = build_datasets(cfg, data)["train"][0]
    assert item["cross"].shape == item["image"].shape and not torch.equal(item["cross"], item["image"])
    run = train_run(cfg, tmp_path / "run")
    assert (run / "eval" / "test" / "metrics.json").exists()
    from scintix.runfolder import load_run

    model = load_run(run).model
    batch = {k: v[None] if torch.is_tensor(v) else v for k, v in item.items()}
    with torch.no_grad():
        with_cross = forward(model, batch, torch.device("cpu"))
        without = forward(model, {k: v for k, v in batch.items() if k != "cross"}, torch.device("cpu"))  # falls back to the image itself
    assert not torch.allclose(with_cross, without)


def test_segmentation_trained_on_patches_is_evaluated_on_whole_scans(tmp_path):
    from scintix.cli.__main__ import main

    sim = tmp_path / "sim"
    assert main(["simulate", str(sim), "--n", "8", "--seed", "5", "--prevalence", "metastasis=0.8", "arthritis=0"]) == 0
    cfg = load_config("p4-unet", [f"data.source={sim}", "data.image_size=[128,32]", "data.patch_size=[64,32]", "train.epochs=1", "train.batch_size=4",
                                  "train.progress=false", "train.tensorboard=false", "eval.n_bootstrap=20", "eval.figures=false"])
    run = train_run(cfg, tmp_path / "run")
    m = json.loads((run / "eval" / "test" / "metrics.json").read_text())
    assert m["per_class"]["lesion"]["images_with_lesion"] + m["per_class"]["lesion"]["lesion_free_images"] == m["n"]
    from PIL import Image

    first = next((run / "eval" / "test" / "masks").glob("*.png"))
    assert Image.open(first).size == (32, 128)  # whole scans, by sliding window
    gallery = json.loads((run / "eval" / "test" / "gallery.json").read_text())  # eval.figures=false: cases listed, no overlays
    assert gallery and all(g["png"] is None for g in gallery) and not (run / "eval" / "test" / "gallery").exists()


def test_a_run_started_from_a_weight_file_no_longer_needs_that_file(tiny_manifest, tmp_path):
    from scintix.runfolder import load_run
    from scintix.training.evaluate import evaluate_run

    first = train_run(_cfg(tiny_manifest, "train.epochs=1"), tmp_path / "first")
    start = tmp_path / "start.pt"
    start.write_bytes((first / "checkpoints" / "best.pt").read_bytes())
    second = train_run(_cfg(tiny_manifest, "train.epochs=1", f"model.weights={start}"), tmp_path / "second")
    start.unlink()  # the starting point is gone: the trained run is self-contained
    assert load_run(second).model is not None
    assert "test" in evaluate_run(second)


def test_train_extra_views_only_enlarge_the_train_split(tiny_manifest, tmp_path):
    from scintix.data.prepare import prepare_data

    one = prepare_data(_cfg(tiny_manifest, "data.view_filter=ant"), tmp_path / "one")
    both = prepare_data(_cfg(tiny_manifest, "data.view_filter=ant", "data.train_extra_views=[post]"), tmp_path / "both")
    views = {s: sorted("post" if "_post" in x.paths[0] else "ant" for x in both.samples[s]) for s in ("train", "val", "test")}
    assert views["train"].count("post") == views["train"].count("ant") == len(one.samples["train"])  # each train patient's posterior image too
    for s in ("val", "test"):  # what is selected on and tested stays anterior, the same images
        assert set(views[s]) == {"ant"} and [x.paths for x in both.samples[s]] == [x.paths for x in one.samples[s]]
    post = {Path(x.paths[0]).name: int(x.target) for x in both.samples["train"] if "_post" in x.paths[0]}
    truth = {f"p{p}_post.png": int(p % 3 == 0 or p == 11) for p in range(12)}  # the fixture's labels (patient 11 copies patient 0)
    assert post and all(v == truth[name] for name, v in post.items())  # each with its own label
    with pytest.raises(ValueError, match="train_extra_views"):
        _cfg(tiny_manifest, "data.view_filter=null", "data.train_extra_views=[post]")


def test_ema_update_is_the_warmed_up_average():
    from scintix.training.ema import ema_decay, ema_update

    torch.manual_seed(0)
    model, ema = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        ema.weight.fill_(1.0)
        model.weight.copy_(torch.tensor([3.0, 5.0, -1.0]))
        model.running_mean.copy_(torch.tensor([0.5, 0.25, 2.0]))
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 10**6) == 0.999 and ema_decay(0.2, 3) == 0.2 and ema_decay(0.5, 3) == pytest.approx(4 / 13)
    ema_update(ema, model, 0.75)
    assert torch.allclose(ema.weight, 0.75 * 1.0 + 0.25 * torch.tensor([3.0, 5.0, -1.0]))
    assert torch.equal(ema.running_mean, model.running_mean)  # statistics are copied (precise_bn recomputes them for the average)
    ema_update(ema, model, 0.0)
    assert torch.equal(ema.weight, model.weight)


def test_ema_run_ships_the_average(tiny_manifest, tmp_path):
    run = train_run(_cfg(tiny_manifest, "train.epochs=1", "train.ema=0.9"), tmp_path / "r")
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    floats = [k for k, v in last["model"].items() if v.is_floating_point() and "running" not in k]
    assert all(torch.equal(best["model"][k], last["ema"][k]) for k in floats)  # best.pt: the average, not the raw weights
    assert any(not torch.equal(last["ema"][k], last["model"][k]) for k in floats)
    assert best["selection"]["weights"] == "EMA, decay 0.9" and last["state"]["ema_steps"] > 0
    assert "exponential moving average of the training weights (decay 0.9" in (run / "model_card.md").read_text()


def test_offline_copies_expand_only_the_train_split(tiny_manifest, tmp_path):
    from scintix.data.prepare import prepare_data
    from scintix.training.data import build_datasets

    def datasets(name, *extra):
        cfg = _cfg(tiny_manifest, "augment.enabled=false", *extra)
        return build_datasets(cfg, prepare_data(cfg, tmp_path / name))

    plain, copied, again = datasets("a"), datasets("b", "augment.offline_copies=2"), datasets("c", "augment.offline_copies=2")
    n = len(plain["train"])
    assert len(copied["train"]) == 3 * n and np.array_equal(copied["train"].images[:n], plain["train"].images)
    assert [s.patient_id for s in copied["train"].samples] == [s.patient_id for s in plain["train"].samples] * 3  # a copy is its patient's
    assert not np.allclose(copied["train"].images[n:2 * n], plain["train"].images)  # the copies are transformed
    assert np.array_equal(copied["train"].images, again["train"].images)  # seeded: a resumed run gets the same copies
    for split in ("val", "test"):
        assert np.array_equal(copied[split].images, plain[split].images)
    with pytest.raises(ValueError, match="offline_copies"):
        _cfg(tiny_manifest, "augment.offline_copies=-1")


def test_schedules_by_epoch():
    from scintix.training.run import _schedule

    def lrs(*extra, epochs=10):
        cfg = _cfg("x.csv", f"train.epochs={epochs}", "train.lr=1.0", *extra)
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        sched, out = _schedule(cfg, opt), []
        for _ in range(epochs):
            out.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        return np.array(out)

    one = lrs("train.scheduler=onecycle")
    assert one[0] == pytest.approx(1 / 25) and one[3] == pytest.approx(1.0) and np.all(np.diff(one[:4]) > 0) and np.all(np.diff(one[3:]) < 0)
    assert one[-1] == pytest.approx(1e-4 + (1 - 1e-4) * 0.5 * (1 + np.cos(np.pi * 6 / 7)))
    cos = lrs("train.scheduler=cosine", "train.warmup_epochs=1")
    assert cos[0] == pytest.approx(0.5) and cos[1] == pytest.approx(1.0) and np.all(np.diff(cos[1:]) < 0)
    step = lrs("train.scheduler=step", "train.warmup_epochs=0")
    assert list(step) == pytest.approx([1.0] * 5 + [0.1] * 3 + [0.01] * 2)
