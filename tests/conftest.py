"""Seeded tiny fixtures: a handful of small images, a manifest, real-data paths."""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

SHARED = Path(os.environ.get("SCINTIX_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


def pytest_configure(config):
    os.environ.setdefault("SCINTIX_NO_REEXEC", "1")
    from scintix._optional import import_monai_without_transformers

    import_monai_without_transformers()  # as the command line does (the text tests then import transformers after MONAI)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:  # `make test` runs one worker per core (pytest-xdist): one thread each, or they fight for the cores
        import torch

        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # for the processes tests start
        torch.set_num_threads(threads)


# A deeper variant repeats its family's first member (same stem, pooling, head and CAM layer, more blocks): shape and map
# checks on it cost CPU, not coverage. Every registered model still passes the forward/backward contract.
DEEPER_VARIANT_OF = {"resnet34": "resnet18", "resnet101": "resnet50", "densenet169": "densenet121",
                     "vgg16": "vgg11", "vgg19": "vgg11", "vgg16_bn": "vgg11_bn", "vgg19_bn": "vgg11_bn"}


def one_per_family(names) -> list[str]:
    """``names`` without the deeper variants whose family's first member is among them."""
    names = list(names)
    return [n for n in names if DEEPER_VARIANT_OF.get(n) not in names]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def tiny_manifest(tmp_path: Path, rng: np.random.Generator) -> Path:
    """12 patients x 2 views of 24x16 PNGs; label = bright blob present; patient 11 duplicates patient 0."""
    return _tiny_manifest(tmp_path, rng)


@pytest.fixture(scope="module")
def tiny_manifest_module(tmp_path_factory) -> Path:
    """The same data, made once per test module (for tests that share one trained run)."""
    return _tiny_manifest(tmp_path_factory.mktemp("tiny"), np.random.default_rng(0))


@pytest.fixture
def multilabel_manifest(tmp_path: Path, rng: np.random.Generator) -> Path:
    """24 patients, one 24x16 PNG each, P2-style labels: metastasis (odd), arthritis (every third), else normal."""
    rows = ["path,label,patient_id"]
    for p in range(24):
        img = rng.integers(0, 30, size=(24, 16)).astype(np.uint8)
        labels = []
        if p % 2:
            img[2:6, 2:6] = 250
            labels.append("metastasis")
        if p % 3 == 0:
            img[18:22, 10:14] = 250
            labels.append("arthritis")
        Image.fromarray(img).save(tmp_path / f"{p}.png")
        rows.append(f"{p}.png,{';'.join(labels) or 'normal'},P{p}")
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "m.csv"


def _tiny_manifest(tmp_path: Path, rng: np.random.Generator) -> Path:
    rows = ["path,label,patient_id,view"]
    for p in range(12):
        label = p % 3 == 0
        for view in ("ant", "post"):
            if p == 11:
                src = tmp_path / f"p0_{view}.png"
                dst = tmp_path / f"p11_{view}.png"
                dst.write_bytes(src.read_bytes())
                rows.append(f"{dst.name},1,P11,{view}")
                continue
            img = rng.integers(0, 40, size=(24, 16)).astype(np.uint8)
            if label:
                img[8:12, 6:10] = 250
            Image.fromarray(img).save(tmp_path / f"p{p}_{view}.png")
            rows.append(f"p{p}_{view}.png,{int(label)},P{p},{view}")
    path = tmp_path / "manifest.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def benchmark_module(monkeypatch):
    """``load(name)``: a module of benchmarks/ (scripts, not a package: the folder joins sys.path for this test only)."""

    def load(name: str):
        monkeypatch.syspath_prepend(str(BENCHMARKS))
        return importlib.import_module(name)

    return load


def shared(name: str) -> Path:
    """A folder of ../shared/data, or skip the test cleanly when it is absent."""
    path = SHARED / name
    if not path.is_dir():
        pytest.skip(f"real data {path} not present")
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One tiny trained run (small CNN, anterior views only, 1 epoch) shared by the robustness tests."""
    from scintix.cli.__main__ import main

    root = tmp_path_factory.mktemp("robust")
    manifest = _tiny_manifest(root, np.random.default_rng(0))
    fast = ["-o", "model.name=small_cnn", "-o", "data.image_size=[24,16]", "-o", "train.batch_size=8", "-o", "train.channels_last=false", "-o", "train.tensorboard=false",
            "-o", "eval.n_bootstrap=20", "-o", "eval.figures=false", "-o", "data.split.ratios=[0.5,0.3,0.2]", "-o", "data.views=null", "-o", "data.view_filter=ant", "-o", "train.progress=false"]
    assert main(["run", "--data", str(manifest), "--out", str(root / "run"), "--epochs", "1", *fast]) == 0
    return root / "run"


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    """A private copy of the tiny run, to damage."""
    import shutil

    return Path(shutil.copytree(tiny_run, tmp_path / "run"))
