"""``scintix gan train``: the conditional DCGAN's training loop, on the training split only.

Two models, two optimizers, one loop, kept apart from the classifier loop
(:mod:`scintix.training`), with its conventions: a run folder
(``config.yaml``, ``meta.json``, ``split.csv``, ``data_summary.json``,
``history.csv``, ``checkpoints/last.pt``), one seed, resumable checkpoints
(the random state is saved too, so a resumed run continues exactly where the
first stopped), a progress bar. After every epoch a sample grid
``samples/epoch_NNN.png`` (one row per class, fixed noise, the EMA generator).

The generator learns only from the ``train`` split of the same patient-grouped
split the classifier would make (``split.csv``): a classifier trained on its
images must keep those patients out of validation and test, and
:func:`scintix.data.generated.attach_generated` refuses one that does not.
"""

from __future__ import annotations

import copy
import json
import logging
import platform
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..checkpoint import save_checkpoint
from ..config import RunConfig
from ..data.datasets import CachedDataset
from ..data.prepare import prepare_data
from ..runtime import environment, resolve_device
from ..tasks import get_task
from ..training.ema import ema_decay, ema_update
from .diffaug import AdaptiveProbability, diff_augment
from .gan import Discriminator, Generator, d_loss, g_loss, r1_penalty, up_steps
from .runs import open_run, restore, write_history

__all__ = ["train_gan", "build_gan", "conditions", "to_unit", "BOUNDED"]

log = logging.getLogger(__name__)

BOUNDED = ("percentile", "minmax")  # normalisations with images in [0, 1], which tanh's [-1, 1] maps onto


def build_gan(cfg: RunConfig, n_conditions: int, channels: int) -> tuple[Generator, Discriminator]:
    g = cfg.gan
    k = n_conditions if g.conditional else 0
    return (Generator(cfg.data.image_size, g.latent_dim, k, channels, g.base_channels), Discriminator(cfg.data.image_size, k, channels, g.base_channels, g.minibatch_std))


def conditions(targets: np.ndarray, n_classes: int, multilabel: bool) -> torch.Tensor:
    """Per image, the condition vector: one-hot of the class, or the multi-hot label vector."""
    t = torch.as_tensor(np.asarray(targets))
    if multilabel:
        return t.float().reshape(len(t), -1)
    return torch.nn.functional.one_hot(t.long().reshape(-1), n_classes).float()


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Generator output ``[-1, 1]`` -> image ``[0, 1]``."""
    return (x.clamp(-1, 1) + 1) / 2


def _check(cfg: RunConfig) -> None:
    up_steps(cfg.data.image_size)
    if cfg.data.normalize not in BOUNDED:
        raise ValueError(f"data.normalize={cfg.data.normalize!r}: a GAN needs images in [0, 1] (data.normalize: {' or '.join(BOUNDED)})")
    if get_task(cfg.data.task).dense:
        raise ValueError("data.task=segmentation: the GAN generates images conditioned on classes; use a classification manifest")
    if cfg.data.generated:
        raise ValueError("data.generated is set: a generator is trained on real images only (remove data.generated)")


def train_gan(cfg: RunConfig | None, run_dir: str | Path, resume: bool = False, max_epochs: int | None = None) -> Path:
    """Train the conditional DCGAN of ``cfg.gan`` on the training split of ``cfg.data``; returns the run folder.

    Args:
        cfg: the resolved config (ignored on resume: the saved one is used).
        run_dir: the run folder; must not hold a GAN run unless ``resume``.
        resume: continue from ``checkpoints/last.pt``.
        max_epochs: stop after this many epochs in total (an interruption, in tests).
    """
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    if cfg is not None and not resume:
        _check(cfg)  # before anything is written
    cfg = open_run(cfg, run_dir, resume, "GAN")
    data = prepare_data(cfg, run_dir)
    task = get_task(cfg.data.task)
    d = cfg.data
    ds = CachedDataset(data.samples["train"], tuple(d.image_size), d.normalize, tuple(d.percentiles), progress=cfg.train.progress, windows=d.windows)
    if len(ds) < 2:
        raise ValueError(f"{run_dir}: {len(ds)} readable training image(s); a GAN needs more")
    images = torch.from_numpy(ds.images) * 2 - 1  # [0, 1] -> [-1, 1]
    cond = conditions(ds.targets, len(data.classes), task.multilabel)
    device = resolve_device(cfg.train.device)
    g = cfg.gan
    gen, disc = build_gan(cfg, len(data.classes), images.shape[1])
    gen, disc = gen.to(device), disc.to(device)
    ema = copy.deepcopy(gen).eval().requires_grad_(False)
    opt_g = torch.optim.Adam(gen.parameters(), lr=g.lr_g, betas=tuple(g.betas))
    opt_d = torch.optim.Adam(disc.parameters(), lr=g.lr_d, betas=tuple(g.betas))
    fixed = torch.Generator().manual_seed(cfg.train.seed + 1)
    grid_z = torch.randn(len(data.classes) * g.grid_per_class, g.latent_dim, generator=fixed)
    grid_y = torch.eye(len(data.classes)).repeat_interleave(g.grid_per_class, 0)  # row c: class c (multi-label: label c alone)
    ada = AdaptiveProbability(g.ada_target, g.ada_kimg) if g.ada_target else None
    history: list[dict] = []
    epoch = 0
    if resume:
        ck = restore(last, generator=gen, discriminator=disc, model=ema, opt_g=opt_g, opt_d=opt_d, **({"ada": ada} if ada else {}))
        epoch, history = ck["epoch"], ck["history"]
        log.info("resuming %s at epoch %d", run_dir, epoch)
    meta = {"kind": "gan", "scintix_version": __version__, "torch_version": torch.__version__, "python": platform.python_version(), "device": str(device),
            "seed": cfg.train.seed, "synthetic": data.synthetic, "classes": data.classes, "multilabel": task.multilabel, "image_size": list(d.image_size),
            "channels": int(images.shape[1]), "views": list(d.views) if d.views else None, "train_images": len(ds), "train_patients": len({s.patient_id for s in ds.samples}),
            "parameters": {"generator": sum(p.numel() for p in gen.parameters()), "discriminator": sum(p.numel() for p in disc.parameters())},
            "environment": environment()}
    (run_dir / "meta.json").write_text(json.dumps(meta, indent=2))
    n, bs = len(images), min(g.batch_size, len(images))
    step = sum(len(range(0, n - bs + 1, bs)) // g.d_steps for _ in range(epoch))  # generator updates so far (resume)
    stop = min(g.epochs, max_epochs) if max_epochs else g.epochs
    started = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
    while epoch < stop:
        gen.train()
        disc.train()
        order = torch.randperm(n)
        sums = {"d_loss": 0.0, "g_loss": 0.0, "d_real": 0.0, "d_fake": 0.0, "d_real_sign": 0.0}  # d_real_sign: ADA's overfitting heuristic r
        steps = range(0, n - bs + 1, bs)
        if cfg.train.progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc=f"gan epoch {epoch + 1}/{g.epochs}", leave=False, disable=None)
        counts = {"d": 0, "g": 0}
        for i, start in enumerate(steps):
            idx = order[start : start + bs]
            real, y = images[idx].to(device), cond[idx].to(device)
            p = ada.p if ada else 1.0
            stats = d_step(gen, disc, opt_d, real, y, cfg, p)
            if ada:
                ada.update(stats["d_real_sign"], len(real))
            counts["d"] += 1
            if (i + 1) % g.d_steps == 0:  # one generator update per d_steps discriminator updates
                stats["g_loss"] = g_step(gen, disc, opt_g, real, y, cfg, p)
                counts["g"] += 1
                step += 1
                # warm-up: early on the average would be mostly the random initial weights (0.999^1000 = 0.37), so the
                # decay grows with the number of updates, as TensorFlow's ExponentialMovingAverage(num_updates) does
                ema_update(ema, gen, ema_decay(g.ema, step))
            for k in sums:
                if k in stats:
                    sums[k] += stats[k]
        epoch += 1
        row = {"epoch": epoch, **{k: round(v / max(1, counts["g" if k == "g_loss" else "d"]), 5) for k, v in sums.items()},
               **({"ada_p": round(ada.p, 5)} if ada else {}), "elapsed_s": round(time.perf_counter() - started, 1)}
        history.append(row)
        write_grid(run_dir / "samples" / f"epoch_{epoch:03d}.png", sample(ema, grid_z, grid_y if g.conditional else None, device), len(data.classes))
        save_checkpoint({"model": ema.state_dict(), "generator": gen.state_dict(), "discriminator": disc.state_dict(), "opt_g": opt_g.state_dict(),
                         "opt_d": opt_d.state_dict(), **({"ada": ada.state_dict()} if ada else {}), "epoch": epoch, "history": history, "rng": torch.get_rng_state(), "classes": data.classes}, last)
        write_history(run_dir / "history.csv", history)
        log.info("gan epoch %d: D %.4f (real %.3f, fake %.3f), G %.4f%s", epoch, row["d_loss"], row["d_real"], row["d_fake"], row["g_loss"],
                 f", augmentation p {ada.p:.3f}" if ada else "")
    return run_dir


def gan_step(gen: Generator, disc: Discriminator, opt_g, opt_d, real: torch.Tensor, y: torch.Tensor, cfg: RunConfig) -> dict[str, float]:
    """One discriminator step and one generator step on a batch of real images ``(B, C, H, W)`` in ``[-1, 1]`` with conditions ``y``."""
    stats = d_step(gen, disc, opt_d, real, y, cfg)
    return {**stats, "g_loss": g_step(gen, disc, opt_g, real, y, cfg)}


def d_step(gen: Generator, disc: Discriminator, opt_d, real: torch.Tensor, y: torch.Tensor, cfg: RunConfig, p: float = 1.0) -> dict[str, float]:
    """One discriminator update: real images vs a fresh generated batch of the same conditions, each transform of
    ``gan.diffaug`` reaching an image with probability ``p``; its loss, mean scores and mean sign of the real scores."""
    g = cfg.gan
    y = y if g.conditional else None
    z = torch.randn(len(real), g.latent_dim, device=real.device)
    with torch.no_grad():
        fake = gen(z, y)
    real_in = diff_augment(real, g.diffaug, p=p)
    if g.r1_gamma > 0:
        real_in = real_in.detach().requires_grad_(True)
    s_real, s_fake = disc(real_in, y), disc(diff_augment(fake, g.diffaug, p=p), y)
    loss_d = d_loss(s_real, s_fake, g.loss)  # type: ignore[arg-type]
    if g.r1_gamma > 0:
        loss_d = loss_d + g.r1_gamma / 2 * r1_penalty(s_real, real_in)
    opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    opt_d.step()
    return {"d_loss": loss_d.item(), "d_real": s_real.detach().mean().item(), "d_fake": s_fake.detach().mean().item(),
            "d_real_sign": torch.sign(s_real.detach()).mean().item()}


def g_step(gen: Generator, disc: Discriminator, opt_g, real: torch.Tensor, y: torch.Tensor, cfg: RunConfig, p: float = 1.0) -> float:
    """One generator update on a batch the size of ``real`` with conditions ``y`` (augmentation probability ``p``); its loss."""
    g = cfg.gan
    y = y if g.conditional else None
    z = torch.randn(len(real), g.latent_dim, device=real.device)
    loss_g = g_loss(disc(diff_augment(gen(z, y), g.diffaug, p=p), y), g.loss)  # type: ignore[arg-type]
    opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    opt_g.step()
    return loss_g.item()


@torch.no_grad()
def sample(gen: Generator, z: torch.Tensor, y: torch.Tensor | None, device, batch: int = 64) -> np.ndarray:
    """Images ``(N, C, H, W)`` in ``[0, 1]`` (float32) from noise ``z`` and conditions ``y``, in batches."""
    gen.eval()
    out = [to_unit(gen(z[i : i + batch].to(device), None if y is None else y[i : i + batch].to(device))).cpu() for i in range(0, len(z), batch)]
    return torch.cat(out).numpy().astype(np.float32)


def write_grid(path: Path, images: np.ndarray, rows: int) -> Path:
    """A PNG grid of ``(N, C, H, W)`` images in ``[0, 1]`` (first channel), ``rows`` rows, 2-px gaps."""
    from PIL import Image

    from .._atomic import atomic_path

    n, _, h, w = images.shape
    cols = max(1, -(-n // rows))
    canvas = np.ones((rows * (h + 2) - 2, cols * (w + 2) - 2), np.float32)
    for i in range(n):
        r, c = divmod(i, cols)
        canvas[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w] = images[i, 0]
    with atomic_path(path) as tmp:
        Image.fromarray((canvas * 255).round().astype(np.uint8)).save(tmp, format="PNG")
    return path
