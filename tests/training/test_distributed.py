"""Data-parallel training under torchrun (2 gloo processes on this CPU) against one process with the same global batch."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from scintix.cli.__main__ import main
from scintix.training.distributed import DistContext, RankBatchSampler, shard_range

# Equality needs what differs by design switched off: fp32 (bf16 autocast rounds differently for a half batch),
# no dropout (each rank draws its own masks), class_balance none (a weighted mean is normalised per rank).
SAME = ["-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "train.batch_size=8", "-o", "train.channels_last=false", "-o", "train.tensorboard=false",
        "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false", "-o", "data.split.ratios=[0.5,0.3,0.2]", "-o", "data.views=null", "-o", "data.view_filter=null", "-o", "train.progress=false",
        "-o", "train.class_balance=none", "-o", "train.early_stop_patience=0", "-o", "train.precision=fp32", "-o", "model.dropout=0"]
TOL = 1e-4  # relative: float32 sums in another order (all-reduce vs one reduction, E[x^2]-E[x]^2 vs Welford), measured ~3e-6 after 3 epochs


def test_eval_shards_partition_the_images_without_padding():
    for n in (0, 1, 5, 10, 11):
        for world in (1, 2, 3):
            shards = [list(shard_range(n, DistContext(r, world))) for r in range(world)]
            assert sorted(i for s in shards for i in s) == list(range(n))  # every image exactly once


def test_ranks_share_each_global_batch():
    order = list(range(20))[::-1]
    whole = list(RankBatchSampler(order, 8, DistContext(), drop_last=True))
    parts = [list(RankBatchSampler(order, 8, DistContext(r, 2), drop_last=True)) for r in range(2)]
    assert whole == [order[:8], order[8:16]]
    assert [a + b for a, b in zip(*parts)] == whole and all(len(b) == 4 for p in parts for b in p)
    with pytest.raises(ValueError, match="multiple of the number of processes"):
        RankBatchSampler(order, 7, DistContext(0, 2), drop_last=True)


def _run(args, tmp, timeout=240):
    temp = tmp / "temp"  # the launcher's temporary directory: torchrun's torchelastic_* folder goes there and is removed
    temp.mkdir()
    env = {**os.environ, "SCINTIX_NO_REEXEC": "1", "OMP_NUM_THREADS": "1", "TMPDIR": str(temp)}
    p = subprocess.run([sys.executable, "-m", "scintix.cli", "run", *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not list(temp.iterdir()), list(temp.iterdir())  # nothing left behind
    return p


def _history(run) -> list[dict]:
    return list(csv.DictReader(open(run / "history.csv")))


def test_two_processes_match_one_and_write_once(tiny_manifest, tmp_path):
    """One torchrun launch (each costs ~20 s of start-up here) that resumes, under 2 processes, a run a single process
    started: training continues as one process would have (the laptop-to-GPUs case), rank 0 alone writes and prints."""
    from scintix.runfolder import load_run, load_run_config
    from scintix.training.run import train_run

    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", "--data", str(tiny_manifest), "--out", str(one), "--epochs", "3", *SAME]) == 0  # in this process: no start-up
    train_run(load_run_config(one), two, max_epochs=1)  # the same run, "killed" after epoch 1
    assert json.loads((two / "meta.json").read_text())["processes"] == 1
    p = _run(["--nproc", "2", "--resume", "--out", two], tmp_path)
    assert p.stdout.count("run folder:") == 1 and p.stdout.count("n (patients)") == 1  # rank 0 alone prints the table
    h1, h2 = _history(one), _history(two)
    assert [int(r["epoch"]) for r in h2] == [1, 2, 3]  # one writer: no duplicated rows
    for a, b in zip(h1, h2):
        for key in ("train_loss", "val_loss", "val_roc_auc"):
            assert abs(float(a[key]) - float(b[key])) <= TOL * max(1.0, abs(float(a[key]))), (key, a, b)
    meta = json.loads((two / "meta.json").read_text())
    assert meta["processes"] == 2 and meta["backend"] == "gloo"
    assert sorted(p.name for p in (two / "checkpoints").iterdir()) == ["best.pt", "last.pt"]  # nothing half-written left behind
    # the checkpoint is a plain module's: it loads in one process and predicts
    run = load_run(two)
    assert not any(k.startswith("module.") for k in run.model.state_dict())
    m1 = json.loads((one / "eval" / "val" / "metrics.json").read_text())["per_class"]["abnormal"]["roc_auc"]["value"]
    m2 = json.loads((two / "eval" / "val" / "metrics.json").read_text())["per_class"]["abnormal"]["roc_auc"]["value"]
    assert abs(m1 - m2) <= TOL


def test_a_torchrun_worker_leaves_without_the_interpreter_teardown(monkeypatch, capsys):
    """Under torchrun the console entry hands main's exit code to os._exit after flushing (gloo's threads torn down with
    the interpreter once aborted a finished run); a single process exits through sys.exit as usual."""
    import scintix.cli.__main__ as cli

    left = []

    def fake_exit(code):
        left.append(code)
        raise SystemExit("os._exit")

    monkeypatch.setattr(cli, "main", lambda: print("table") or 3)
    monkeypatch.setattr(cli.os, "_exit", fake_exit)
    monkeypatch.setenv("SCINTIX_NO_REEXEC", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit, match="os._exit"):
        cli.entry()
    assert left == [3] and capsys.readouterr().out == "table\n"
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(SystemExit) as exc:
        cli.entry()
    assert exc.value.code == 3 and left == [3]
