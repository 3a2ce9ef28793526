"""The run's datasets: cached, augmented for training only, with masks and cross-feature images when the run needs them."""

from __future__ import annotations

import copy
import logging
from dataclasses import replace

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..config import RunConfig
from ..data.datasets import CachedDataset
from ..data.prepare import PreparedData
from ..models.registry import MODELS, builder_inputs
from ..runfolder import build_model_for_run
from ..tasks import get_task
from ..transforms.augment import Augmenter
from .distributed import DistContext, RankBatchSampler, shard_range
from .loop import model_inputs

__all__ = ["build_datasets", "make_loader", "plain_view", "model_inputs_of", "training_like_batches"]

log = logging.getLogger(__name__)


def build_datasets(cfg: RunConfig, data: PreparedData) -> dict[str, CachedDataset]:
    """One :class:`CachedDataset` per split; a random transform never touches validation or test images."""
    d = cfg.data
    aug = Augmenter(cfg.augment) if cfg.augment.enabled else None
    task = get_task(d.task)
    wants_cross = "cross" in model_inputs_of(cfg)
    use_cross = wants_cross and any(s.cross for ss in data.samples.values() for s in ss)
    if wants_cross and not use_cross:
        log.info("model %s takes a cross-feature input, but the manifest has no cross_path column: each image is its own cross-feature input", cfg.model.name)
    # the batch is augmented at once in the loop, unless patches are cut per sample after augmentation
    batched = aug is not None and cfg.augment.batched and not aug.is_identity() and not (task.dense and d.patch_size)
    out = {
        split: CachedDataset(samples, tuple(d.image_size), d.normalize, tuple(d.percentiles), aug if split == "train" else None, cfg.train.seed,
                             progress=cfg.train.progress, windows=d.windows, mask_mode=d.mask_mode if task.dense else None,
                             n_classes=len(data.classes), use_cross=use_cross,
                             patch_size=d.patch_size if (task.dense and split == "train") else None, patch_fg_prob=d.patch_fg_prob,
                             batch_augment=split == "train" and batched)
        for split, samples in data.samples.items()
    }
    if cfg.augment.offline_copies:  # P1's augmented dataset: fixed copies of the training images only
        from ..transforms.offline import expand_cached

        n = len(out["train"])
        out["train"] = expand_cached(out["train"], cfg.augment.offline_copies, cfg.augment, cfg.train.seed)
        log.info("augment.offline_copies=%d: %d training images + %d fixed augmented copies", cfg.augment.offline_copies, n, len(out["train"]) - n)
    return out


def model_inputs_of(cfg: RunConfig) -> tuple[str, ...]:
    """The named inputs of the configured model, read off an instance on the meta device (nothing allocated)."""
    if cfg.model.name in MODELS and "text" in builder_inputs(cfg.model.name):
        return builder_inputs(cfg.model.name)  # its tokenizer (built from the training reports) does not exist yet
    with torch.device("meta"):
        return model_inputs(build_model_for_run(replace(cfg, model=replace(cfg.model, weights=None)), 2))


def plain_view(ds: CachedDataset) -> CachedDataset:
    """The same cached images without augmentation (shares the arrays)."""
    view = copy.copy(ds)
    view.augment = None
    return view


def make_loader(ds: CachedDataset, cfg: RunConfig, train: bool, epoch: int, ctx: DistContext | None = None) -> DataLoader:
    """Training: shuffled (or balanced by the sampler), seeded by (seed, epoch), last partial batch dropped;
    evaluation: in order.

    Under ``torchrun`` (``ctx``) every rank draws the same global order and
    takes its slice of each global batch of ``train.batch_size``; evaluation
    gives each rank a contiguous shard, nothing padded (see :mod:`.distributed`).
    """
    t = cfg.train
    ctx = ctx or DistContext()
    pin = t.device != "cpu" and torch.cuda.is_available()  # page-locked batches: the copies to the GPU run asynchronously (non_blocking)
    if not train:
        shard = shard_range(len(ds), ctx)
        per_rank = max(1, t.batch_size // ctx.world)
        return DataLoader(ds, batch_sampler=RankBatchSampler(list(shard), per_rank, ctx, False, shard_batches=False), num_workers=t.num_workers, pin_memory=pin)
    g = torch.Generator().manual_seed(t.seed * 7919 + epoch)
    if t.class_balance == "sampler":
        key = get_task(cfg.data.task).sampler_key(ds.targets)
        freq = np.bincount(key)
        weights = torch.as_tensor(1.0 / freq[key], dtype=torch.double)
        order = torch.multinomial(weights, len(ds), True, generator=g).tolist()  # as WeightedRandomSampler draws
    else:
        order = torch.randperm(len(ds), generator=g).tolist()  # as DataLoader(shuffle=True) draws
    return DataLoader(ds, batch_sampler=RankBatchSampler(order, t.batch_size, ctx, drop_last=len(ds) > t.batch_size), num_workers=t.num_workers, pin_memory=pin)


def training_like_batches(ds: CachedDataset, cfg: RunConfig, epoch: int, max_images: int, ctx: DistContext | None = None):
    """Training batches drawn exactly as in training (same sampler: balanced batches stay balanced), not augmented,
    until ``max_images`` are given.

    What BatchNorm statistics must be computed on, and what train mode must be compared on: the network learned
    with the statistics of such batches, and statistics of another mix (natural prevalence instead of the
    balanced sampler's 50/50) shift every logit.
    """
    n, world = 0, (ctx.world if ctx else 1)
    for batch in make_loader(plain_view(ds), cfg, True, epoch, ctx):
        yield batch
        n += len(batch["image"]) * world  # every rank gives its slice of the same global batches
        if n >= max_images:
            break
