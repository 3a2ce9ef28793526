"""``scintix sr train | evaluate | apply``: SRGAN training on real scans, PSNR/SSIM against bicubic, up-sampling files.

Pairs are made from real images: the high-resolution image is a scan at
``data.image_size`` (normalised to [0, 1]), its low-resolution input the same
scan down-sampled by ``sr.scale`` (anti-aliased bicubic). Training uses the
``train`` split; the checkpoint with the best validation PSNR is kept
(``best.pt``); :func:`evaluate_sr` reports PSNR and SSIM of SR and of bicubic
up-sampling on the ``test`` split (patients never seen), with the paired
differences and patient-level CIs.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..checkpoint import load_checkpoint, save_checkpoint
from ..config import RunConfig
from ..data.datasets import CachedDataset, preprocess
from ..data.prepare import prepare_data
from ..evaluation.bootstrap import paired_difference_ci
from ..runtime import resolve_device
from .gan import d_loss, g_loss
from .runs import open_run, restore, write_history
from .srgan import SRDiscriminator, SRGenerator, bicubic, downsample, psnr, ssim

__all__ = ["train_sr", "evaluate_sr", "load_sr", "upsample_files", "feature_extractor", "split_images"]

log = logging.getLogger(__name__)


def feature_extractor(run_dir: str | Path, device) -> torch.nn.Module:
    """The frozen ``forward_features`` of a scintix classifier run (the perceptual loss's features)."""
    from ..runfolder import load_run

    run = load_run(run_dir)
    if not hasattr(run.model, "forward_features"):
        raise ValueError(f"{run_dir}: sr.feature_run must be a classifier run (model {run.cfg.model.name} has no forward_features)")
    model = run.model.to(device).eval().requires_grad_(False)

    class Features(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.model.forward_features(x)

    return Features()


def split_images(cfg: RunConfig, data, split: str) -> tuple[torch.Tensor, list]:
    """A split's images ``(N, C, H, W)`` in [0, 1] at ``data.image_size`` (the high resolution) and their samples."""
    d = cfg.data
    ds = CachedDataset(data.samples[split], tuple(d.image_size), d.normalize, tuple(d.percentiles), windows=d.windows)
    return torch.from_numpy(ds.images), ds.samples


def train_sr(cfg: RunConfig | None, run_dir: str | Path, resume: bool = False, max_epochs: int | None = None) -> Path:
    """Train the SRGAN of ``cfg.sr`` on the training split of ``cfg.data``; returns the run folder."""
    run_dir = Path(run_dir)
    if cfg is not None and not resume:
        h, w = cfg.data.image_size
        if h % cfg.sr.scale or w % cfg.sr.scale:
            raise ValueError(f"data.image_size={[h, w]}: both sides must be multiples of sr.scale={cfg.sr.scale}")
        if cfg.data.normalize not in ("percentile", "minmax"):
            raise ValueError(f"data.normalize={cfg.data.normalize!r}: super-resolution works on images in [0, 1] (percentile or minmax)")
    cfg = open_run(cfg, run_dir, resume, "super-resolution")
    s = cfg.sr
    data = prepare_data(cfg, run_dir)
    hr, _ = split_images(cfg, data, "train")
    val_hr, _ = split_images(cfg, data, "val")
    if len(hr) < 1 or len(val_hr) < 1:
        raise ValueError(f"{run_dir}: need training and validation images (got {len(hr)}, {len(val_hr)})")
    device = resolve_device(cfg.train.device)
    gen, disc = SRGenerator(s.scale, hr.shape[1], s.features, s.blocks).to(device), SRDiscriminator(hr.shape[1]).to(device)
    opt_g, opt_d = torch.optim.Adam(gen.parameters(), s.lr, betas=(0.9, 0.999)), torch.optim.Adam(disc.parameters(), s.lr, betas=(0.9, 0.999))
    feats = feature_extractor(s.feature_run, device) if s.perceptual_weight > 0 else None
    last, best_path = run_dir / "checkpoints" / "last.pt", run_dir / "checkpoints" / "best.pt"
    epoch, history, best = 0, [], -np.inf
    if resume:
        ck = restore(last, model=gen, discriminator=disc, opt_g=opt_g, opt_d=opt_d)
        epoch, history, best = ck["epoch"], ck["history"], ck["best"]
    (run_dir / "meta.json").write_text(json.dumps({"kind": "sr", "scintix_version": __version__, "device": str(device), "seed": cfg.train.seed,
                                                   "synthetic": data.synthetic, "scale": s.scale, "image_size": list(cfg.data.image_size), "channels": int(hr.shape[1]),
                                                   "train_images": len(hr), "perceptual_features": f"forward_features of {s.feature_run}" if feats else None}, indent=2))
    started = time.perf_counter() - (history[-1]["elapsed_s"] if history else 0.0)
    stop = min(s.epochs, max_epochs) if max_epochs else s.epochs
    while epoch < stop:
        gen.train()
        order = torch.randperm(len(hr))
        sums = {"content": 0.0, "perceptual": 0.0, "adversarial": 0.0, "d_loss": 0.0}
        for i in range(0, len(hr), s.batch_size):
            real = hr[order[i : i + s.batch_size]].to(device)
            sr = gen(downsample(real, s.scale))
            if s.adversarial_weight > 0:
                loss_d = d_loss(disc(real), disc(sr.detach()), "nonsaturating")
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                opt_d.step()
                sums["d_loss"] += loss_d.item()
            content = F.l1_loss(sr, real)
            perceptual = F.mse_loss(feats(sr), feats(real)) if feats is not None else torch.zeros((), device=device)
            adversarial = g_loss(disc(sr), "nonsaturating") if s.adversarial_weight > 0 else torch.zeros((), device=device)
            loss = content + s.perceptual_weight * perceptual + s.adversarial_weight * adversarial
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            for k, v in (("content", content), ("perceptual", perceptual), ("adversarial", adversarial)):
                sums[k] += v.item()
        epoch += 1
        steps = -(-len(hr) // s.batch_size)
        val_psnr = float(_metrics(gen, val_hr, s.scale, device)["sr_psnr"].mean())
        row = {"epoch": epoch, **{k: round(v / steps, 5) for k, v in sums.items()}, "val_psnr": round(val_psnr, 4), "elapsed_s": round(time.perf_counter() - started, 1)}
        history.append(row)
        if val_psnr > best:
            best = val_psnr
            save_checkpoint({"model": gen.state_dict(), "epoch": epoch, "val_psnr": val_psnr}, best_path)
        save_checkpoint({"model": gen.state_dict(), "discriminator": disc.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                         "epoch": epoch, "history": history, "best": best, "rng": torch.get_rng_state()}, last)
        write_history(run_dir / "history.csv", history)
        log.info("sr epoch %d: content %.4f, val PSNR %.2f dB", epoch, row["content"], val_psnr)
    return run_dir


@torch.no_grad()
def _metrics(gen: SRGenerator, hr: torch.Tensor, scale: int, device, batch: int = 32) -> dict[str, np.ndarray]:
    gen.eval()
    out: dict[str, list] = {k: [] for k in ("sr_psnr", "sr_ssim", "bicubic_psnr", "bicubic_ssim")}
    for i in range(0, len(hr), batch):
        real = hr[i : i + batch].to(device)
        low = downsample(real, scale)
        for name, pred in (("sr", gen(low).clamp(0, 1)), ("bicubic", bicubic(low, scale).clamp(0, 1))):
            out[f"{name}_psnr"].append(psnr(pred, real).cpu())
            out[f"{name}_ssim"].append(ssim(pred, real).cpu())
    return {k: torch.cat(v).numpy().astype(np.float64) for k, v in out.items()}


def load_sr(run_dir: str | Path, device="cpu") -> tuple[SRGenerator, RunConfig]:
    """The best SR generator of a run (eval mode) and its config."""
    from ..runfolder import load_run_config

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "meta.json").read_text()) if (run_dir / "meta.json").is_file() else {}
    if meta.get("kind") != "sr":
        raise ValueError(f"{run_dir}: not a super-resolution run (train one with `scintix sr train`)")
    cfg = load_run_config(run_dir)
    gen = SRGenerator(cfg.sr.scale, meta["channels"], cfg.sr.features, cfg.sr.blocks)
    gen.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "best.pt")["model"])
    return gen.to(device).eval(), cfg


def evaluate_sr(run_dir: str | Path, split: str = "test", n_boot: int = 1000) -> dict:
    """PSNR/SSIM of SR and bicubic on ``split`` (real, unseen patients), paired differences with patient-level CIs; writes ``eval_<split>.json``."""
    run_dir = Path(run_dir)
    device = resolve_device("auto")
    gen, cfg = load_sr(run_dir, device)
    data = prepare_data(cfg, run_dir, write=False)
    hr, samples = split_images(cfg, data, split)
    if not len(hr):
        raise ValueError(f"{run_dir}: no {split} images")
    m = _metrics(gen, hr, cfg.sr.scale, device)
    pids = [smp.patient_id for smp in samples]
    res = {"split": split, "images": len(hr), "patients": len(set(pids)), "scale": cfg.sr.scale, "synthetic": data.synthetic,
           **{k: float(np.mean(v)) for k, v in m.items()},
           "psnr_difference": paired_difference_ci(m["sr_psnr"], m["bicubic_psnr"], pids, n_boot),
           "ssim_difference": paired_difference_ci(m["sr_ssim"], m["bicubic_ssim"], pids, n_boot)}
    (run_dir / f"eval_{split}.json").write_text(json.dumps(res, indent=2))
    return res


@torch.no_grad()
def upsample_files(run_dir: str | Path, inputs: Sequence[str | Path], out_dir: str | Path) -> list[dict]:
    """Up-sample image files by the run's scale (each normalised as in training); one row per input: output or reason."""
    from PIL import Image

    from ..data.io import ImageReadError, read_image

    gen, cfg = load_sr(run_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for path in inputs:
        try:
            h, w = read_image(path)[0].shape[-2:]
            x = torch.from_numpy(preprocess([str(path)], (h, w), cfg.data.normalize, tuple(cfg.data.percentiles)))[None]
            y = gen(x).clamp(0, 1)[0, 0].numpy()
            dst = out_dir / f"{Path(path).stem}_sr_x{cfg.sr.scale}.png"
            Image.fromarray((y * 65535).round().astype(np.uint16)).save(dst)
            rows.append({"input": str(path), "output": str(dst), "size": [int(y.shape[0]), int(y.shape[1])], "error": ""})
        except (ImageReadError, OSError, ValueError) as exc:
            rows.append({"input": str(path), "output": "", "size": None, "error": str(exc)})
    return rows
