"""``scintix gan sample``: a trained generator's images written as a dataset, with provenance.

``OUT/images/gen_NNNNN.png`` (16-bit grey, the run's image size) and
``OUT/manifest.csv`` with ``path, label, patient_id, view, generated=1,
generator_run, generator_epoch, generator_seed, synthetic``: each generated
image is its own "patient" (``gen:<run>:<seed>:<i>``). ``synthetic`` is 1 only
when the generator learned from SYNTHETIC (simulated) scans. Add the manifest
to a classifier run with ``data.generated=[OUT/manifest.csv]``: the rows are
training rows only (:mod:`scintix.data.generated`).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Mapping

import numpy as np
import torch

from .._atomic import atomic_path
from ..checkpoint import load_checkpoint
from ..runfolder import load_run_config
from ..runtime import resolve_device
from .train_gan import build_gan, sample

__all__ = ["load_generator", "sample_gan", "generate"]


def load_generator(run_dir: str | Path, device: str | torch.device = "cpu"):
    """``(generator (EMA weights, eval mode), config, meta)`` of a GAN run."""
    run_dir = Path(run_dir)
    meta_file = run_dir / "meta.json"
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if meta.get("kind") != "gan":
        raise ValueError(f"{run_dir}: not a GAN run (no meta.json of kind 'gan'; train one with `scintix gan train`)")
    cfg = load_run_config(run_dir)
    ck = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    gen, _ = build_gan(cfg, len(meta["classes"]), meta["channels"])
    gen.load_state_dict(ck["model"])
    meta["epoch"] = ck["epoch"]
    return gen.to(device).eval(), cfg, meta


def _train_label_vectors(run_dir: Path, classes: list[str]) -> np.ndarray:
    """Multi-label: the label vectors of the generator's training images (conditions are drawn from these)."""
    rows = list(csv.DictReader(open(run_dir / "split.csv", newline="", encoding="utf-8")))
    vecs = [[int(c in {x.strip() for x in r["label"].split(";")}) for c in classes] for r in rows if r["split"] == "train"]
    return np.asarray(vecs, np.float32).reshape(-1, len(classes))


def generate(run_dir: str | Path, per_class: Mapping[str, int], seed: int = 0, device: str = "cpu") -> tuple[np.ndarray, list[str], dict]:
    """``(images (N, C, H, W) in [0, 1], labels, meta)``: ``per_class[c]`` images conditioned on class (label) ``c``.

    Multi-label: an image "of label c" is conditioned on a training label vector drawn among those holding c.
    """
    gen, _, meta = load_generator(run_dir, device)
    classes = meta["classes"]
    unknown = sorted(set(per_class) - set(classes))
    if unknown:
        raise ValueError(f"--per-class {unknown}: not classes of {run_dir} ({classes})")
    rng = np.random.default_rng(seed)
    torch_gen = torch.Generator().manual_seed(seed)
    vectors = _train_label_vectors(Path(run_dir), classes) if meta.get("multilabel") else None
    conds, labels = [], []
    for c, k in per_class.items():
        i = classes.index(c)
        if vectors is None:
            v = np.zeros((k, len(classes)), np.float32)
            v[:, i] = 1
            labels += [c] * k
        else:
            pool = vectors[vectors[:, i] > 0]
            if not len(pool):
                raise ValueError(f"{run_dir}: no training image has label {c!r}; nothing to condition on")
            v = pool[rng.integers(0, len(pool), k)]
            labels += [";".join(cl for cl, on in zip(classes, row) if on) for row in v]
        conds.append(v)
    y = torch.from_numpy(np.concatenate(conds)) if conds else torch.zeros((0, len(classes)))
    z = torch.randn(len(y), gen.latent_dim, generator=torch_gen)
    images = sample(gen, z, y if gen.num_conditions else None, device) if len(y) else np.zeros((0, meta["channels"], *meta["image_size"]), np.float32)
    return images, labels, meta


def sample_gan(run_dir: str | Path, out_dir: str | Path, per_class: Mapping[str, int], seed: int = 0, device: str = "auto", sr_run: str | Path | None = None) -> Path:
    """Write ``per_class`` generated images per class and their manifest; returns the manifest path.

    ``sr_run``: a ``scintix sr`` run that up-samples every generated image (P3: DCGAN, then SRGAN).
    """
    from PIL import Image

    run_dir, out_dir = Path(run_dir).resolve(), Path(out_dir)
    if (out_dir / "manifest.csv").exists():
        raise FileExistsError(f"{out_dir}: already holds generated images (manifest.csv); pick another --out")
    dev = str(resolve_device(device))
    images, labels, meta = generate(run_dir, per_class, seed, dev)
    if sr_run is not None:
        from .train_sr import load_sr

        sr, _ = load_sr(sr_run, dev)
        with torch.no_grad():
            images = np.concatenate([sr(torch.from_numpy(images[i : i + 64]).to(dev)).clamp(0, 1).cpu().numpy() for i in range(0, len(images), 64)])
    views = meta.get("views") or None
    if meta["channels"] != 1 and (not views or len(views) != meta["channels"]):
        raise ValueError(f"{run_dir}: {meta['channels']}-channel images that are not stacked views; nothing to write them as")
    cfg = load_run_config(run_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (img, label) in enumerate(zip(images, labels)):
        # stacked views (P2's ANT + POST): one file per view, one generated "patient"; a single view: one file
        for c, view in enumerate(views or [cfg.data.view_filter or ""]):
            rel = f"images/gen_{i:05d}{'_' + view if views else ''}.png"
            Image.fromarray((img[c] * 65535).round().astype(np.uint16)).save(out_dir / rel)
            rows.append({"path": rel, "label": label, "patient_id": f"gen:{run_dir.name}:{seed}:{i}", "view": view,
                         "generated": "1", "generator_run": str(run_dir), "generator_epoch": str(meta["epoch"]), "generator_seed": str(seed),
                         "synthetic": "1" if meta.get("synthetic") else "0"})
    manifest = out_dir / "manifest.csv"
    with atomic_path(manifest) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "patient_id", "view", "generated", "generator_run", "generator_epoch", "generator_seed", "synthetic"])
        w.writeheader()
        w.writerows(rows)
    (out_dir / "provenance.json").write_text(json.dumps({"generator_run": str(run_dir), "epoch": meta["epoch"], "seed": seed, "per_class": dict(per_class),
                                                        "image_size": meta["image_size"], "generator_trained_on_synthetic": bool(meta.get("synthetic")),
                                                        "super_resolution_run": str(Path(sr_run).resolve()) if sr_run else None, "written_size": list(images.shape[-2:]),
                                                        "note": "GAN-generated images: training rows only, never validation or test"}, indent=2))
    return manifest
