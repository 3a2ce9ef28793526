"""Why the conditional DCGAN does not train on BS-80K crops at this budget: a diagnostic, not a benchmark of quality.

    python benchmarks/gan_probe.py [--epochs 16] [--base 16] [--arms fixed ada] [--seed N]

Trains the p1-thoracic GAN (anterior crops, 160x64, the training split) once per arm, same seed and budget:

  fixed  always-on differentiable augmentation (colour, translation, cutout) of every image the discriminator sees
  ada    the same transforms with ADA's adaptive probability (gan.ada_target=0.6, gan.ada_kimg=10: p can cross 0 -> 1
         in ~6.5 epochs of 1,536 crops, so it can move within this budget; ADA's own default, 500, could not)

Per epoch (history.csv): the discriminator's hinge loss and mean scores, E[sign D(real)] (ADA's r) and p. At the end,
per class, from the EMA generator (64 samples, fixed noise) against 64 real training crops of that class:
``spread_ratio`` = mean pairwise RMS distance among generated / among real (1 = as varied as real, << 1 = collapse),
``sharpness_ratio`` = mean absolute neighbour difference generated / real. Writes benchmarks/results/gan_probe.json
(arms keyed ``ARM`` for seed 0, ``ARM_seedN`` otherwise; arms of other calls with the same epochs and width are kept).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
from _common import (
    RESULTS,
    SHARED,
    WORK,
    reexec_with_allocator_tuning,
    require,
    write_result,
)

ARMS = {"fixed": [], "ada": ["gan.ada_target=0.6", "gan.ada_kimg=10"]}


def spread(x: np.ndarray) -> float:
    """Mean pairwise RMS distance between images ``(N, ...)``."""
    from scintix.synthesis.quality import pairwise_rms

    return float(pairwise_rms(x, x)[np.triu_indices(len(x), 1)].mean())


def sharpness(x: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels, both directions."""
    return float(np.abs(np.diff(x, axis=-1)).mean() + np.abs(np.diff(x, axis=-2)).mean())


def measure(run: Path, n: int = 64) -> dict:
    """Per class: generated-to-real ratios of spread and sharpness (EMA generator, fixed noise)."""
    import torch

    from scintix.data.datasets import CachedDataset
    from scintix.data.prepare import prepare_data
    from scintix.synthesis.sample import load_generator
    from scintix.synthesis.train_gan import conditions, sample

    gen, cfg, _ = load_generator(run)
    d = cfg.data
    data = prepare_data(cfg, run, write=False)  # the run's own split: the images the generator learned from
    ds = CachedDataset(data.samples["train"], tuple(d.image_size), d.normalize, tuple(d.percentiles), progress=False, windows=d.windows)
    rng, out = np.random.default_rng(0), {}
    targets = np.asarray(ds.targets).reshape(-1)
    for c, name in enumerate(data.classes):
        real = ds.images[targets == c]
        real = real[rng.choice(len(real), min(n, len(real)), replace=False)]
        z = torch.randn(n, cfg.gan.latent_dim, generator=torch.Generator().manual_seed(5))
        fake = sample(gen, z, conditions(np.full(n, c), len(data.classes), False), "cpu")
        out[name] = {"spread_ratio": round(spread(fake) / spread(real), 3), "sharpness_ratio": round(sharpness(fake) / sharpness(real), 3), "real_images": len(real)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=16)
    ap.add_argument("--base", type=int, default=16, help="gan.base_channels")
    ap.add_argument("--arms", nargs="+", choices=sorted(ARMS), default=list(ARMS))
    ap.add_argument("--seed", type=int, default=0, help="train.seed (initialisation, noise, order)")
    a = ap.parse_args()
    import torch

    from scintix.config import load_config
    from scintix.synthesis.train_gan import train_gan

    data = require(SHARED / "bs80k-chest-region")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    old = json.loads((RESULTS / "gan_probe.json").read_text()) if (RESULTS / "gan_probe.json").is_file() else {}
    arms = old.get("arms", {}) if (old.get("epochs"), old.get("base_channels")) == (a.epochs, a.base) else {}
    for arm in a.arms:
        key = arm if a.seed == 0 else f"{arm}_seed{a.seed}"
        run = WORK / f"gan-probe-{key}"
        shutil.rmtree(run, ignore_errors=True)
        cfg = load_config("p1-thoracic", [f"data.source={data}", "train.progress=false", f"gan.epochs={a.epochs}", f"gan.base_channels={a.base}",
                                          f"train.seed={a.seed}", *ARMS[arm]])
        start = time.perf_counter()
        train_gan(cfg, run)
        wall = round(time.perf_counter() - start, 1)
        hist = torch.load(run / "checkpoints" / "last.pt", weights_only=True)["history"]
        arms[key] = {"overrides": ARMS[arm], "seed": a.seed, "wall_seconds": wall, "history": hist, "end": measure(run)}
        write_result("gan_probe", {"data": "BS-80K right-chest anterior crops (real), p1-thoracic training split", "device": device,
                                   "epochs": a.epochs, "base_channels": a.base, "arms": arms})
        last = hist[-1]
        print(key, f"D loss {last['d_loss']:.3f}, r {last['d_real_sign']:.2f}, p {last.get('ada_p', 1.0):.2f}", arms[key]["end"], flush=True)


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
