"""Data-parallel training under ``torchrun``: one process per device (or per CPU share), gloo on CPU, nccl on GPU.

What the engines' issue trackers list as going wrong, and what is done here:

* **Evaluation sees every image exactly once.** ``DistributedSampler`` pads
  the last shard with duplicates, which skews validation metrics. Here each
  rank predicts a contiguous shard (no padding) and the predictions are
  gathered on *every* rank before metrics, so all ranks compute the same
  score and take the same selection and early-stopping decisions (no hang
  from one rank stopping alone).
* **The global batch is what the single process would see.** Every rank
  draws the same global order from the (seed, epoch) generator (shuffle or
  the balanced sampler) and takes its slice of each global batch; with the
  gradients averaged by DDP the update equals the single-process one on the
  same global batch, up to floating-point summation order.
* **BatchNorm sees the global batch.** On GPU, ``torch.nn.SyncBatchNorm``;
  on CPU (which it refuses) :class:`CPUSyncBatchNorm`, the same statistics
  through an all-reduce that is differentiable.
* **One writer.** Rank 0 alone writes config, split, logs, checkpoints and
  reports; checkpoints hold the plain module's weights (no ``module.`` keys).
"""

from __future__ import annotations

import gc
import logging
import os
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = ["DistContext", "setup", "shard_range", "RankBatchSampler", "gather_predictions", "average_buffers", "CPUSyncBatchNorm", "convert_sync_batchnorm", "unwrap"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistContext:
    """This process's place: ``rank`` of ``world`` (``world == 1``: a plain single process)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def all_gather(self, obj) -> list:
        """``obj`` from every rank, in rank order (one-element list in a single process)."""
        if not self.active:
            return [obj]
        out: list = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def broadcast(self, obj):
        """Rank 0's ``obj`` on every rank."""
        if not self.active:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]


def setup(device: str = "auto") -> DistContext:
    """Join the process group ``torchrun`` describes (``WORLD_SIZE`` > 1), else a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return DistContext(rank, world, local)


def shutdown(ctx: DistContext) -> None:
    if ctx.active and dist.is_initialized():
        # every rank reaches this point before any tears the group down: now and then the 2-process test's rank 0
        # aborted at exit in gloo's teardown ("terminate called without an active exception") after rank 1 had left.
        # Whatever still holds the group (a DDP reducer caught in a reference cycle) goes first, while the interpreter
        # is whole: a gloo group destroyed during interpreter finalisation can abort (pytorch/pytorch PR 179291).
        gc.collect()
        dist.barrier()
        dist.destroy_process_group()


def shard_range(n: int, ctx: DistContext) -> range:
    """This rank's contiguous share of ``n`` evaluation items: the shards partition ``range(n)``, nothing padded."""
    bounds = np.linspace(0, n, ctx.world + 1).round().astype(int)
    return range(int(bounds[ctx.rank]), int(bounds[ctx.rank + 1]))


class RankBatchSampler(torch.utils.data.Sampler):
    """Batches of dataset indices for one rank.

    Training: ``order`` (the same on every rank) is cut into global batches of
    ``global_batch``; this rank takes its slice of each, so the ranks together
    see exactly the single process's batches. Evaluation (``order`` already a
    shard): plain consecutive batches.
    """

    def __init__(self, order: Sequence[int], global_batch: int, ctx: DistContext, drop_last: bool, shard_batches: bool = True) -> None:
        if shard_batches and global_batch % ctx.world:
            raise ValueError(f"train.batch_size={global_batch} must be a multiple of the number of processes ({ctx.world})")
        self.order, self.global_batch, self.ctx, self.drop_last, self.shard = list(order), global_batch, ctx, drop_last, shard_batches

    def _batches(self) -> Iterator[list[int]]:
        step = self.global_batch
        for start in range(0, len(self.order), step):
            batch = self.order[start : start + step]
            if len(batch) < step and self.drop_last:
                return
            if self.shard:  # equal slices of a full batch; a last partial one (drop_last off) as even as it gets
                r = shard_range(len(batch), self.ctx)
                batch = batch[r.start : r.stop]
            yield batch

    def __iter__(self) -> Iterator[list[int]]:
        return self._batches()

    def __len__(self) -> int:
        full, rest = divmod(len(self.order), self.global_batch)
        return full + (0 if self.drop_last or not rest else 1)


def gather_predictions(pv: dict, ctx: DistContext) -> dict:
    """Every rank's predictions joined on every rank, in dataset-index order; the loss re-weighted by each shard's size."""
    if not ctx.active:
        return pv
    parts = ctx.all_gather({k: pv[k] for k in ("probs", "logits", "index")} | {"loss_sum": float(pv["loss"]) * len(pv["index"]), "n": len(pv["index"])})
    index = np.concatenate([p["index"] for p in parts])
    order = np.argsort(index, kind="stable")
    n = sum(p["n"] for p in parts)
    out = {k: np.concatenate([p[k] for p in parts])[order] for k in ("probs", "logits")}
    out["index"] = index[order]
    out["loss"] = sum(p["loss_sum"] for p in parts if p["n"]) / n if n else float("nan")
    if len(set(out["index"].tolist())) != len(out["index"]):
        raise RuntimeError("distributed evaluation saw an image twice; the shards overlap")
    return out


def average_buffers(model: nn.Module, ctx: DistContext) -> None:
    """Average BatchNorm running statistics over ranks (after each rank recomputed them on its share of training batches)."""
    if not ctx.active:
        return
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for buf in (m.running_mean, m.running_var):
                dist.all_reduce(buf, op=dist.ReduceOp.SUM)
                buf /= ctx.world


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of a sum over ranks is the sum over ranks of the gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        g = grad.clone()
        dist.all_reduce(g)
        return g


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the global batch across ranks, on CPU (gloo).

    ``torch.nn.SyncBatchNorm`` refuses CPU modules. Here the per-channel sum,
    sum of squares and count are summed over ranks by an all-reduce whose
    backward is again an all-reduce, so the gradient flows through the
    global statistics exactly as in one process holding the whole batch.
    Evaluation mode is the plain BatchNorm.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        dims = (0, 2, 3)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        stats = _AllReduceSum.apply(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        total = stats[-1]
        mean = stats[:c] / total
        var = stats[c : 2 * c] / total - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - momentum).add_(momentum * mean.detach())
                self.running_var.mul_(1 - momentum).add_(momentum * var.detach() * total / max(float(total) - 1, 1.0))
        y = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        return y * self.weight[None, :, None, None] + self.bias[None, :, None, None] if self.affine else y


def convert_sync_batchnorm(model: nn.Module, cuda: bool) -> nn.Module:
    """BatchNorm2d layers -> ``SyncBatchNorm`` (GPU) or :class:`CPUSyncBatchNorm` (CPU); state dict keys unchanged."""
    if cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            new = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            new.load_state_dict(child.state_dict())
            setattr(model, name, new)
        else:
            convert_sync_batchnorm(child, cuda)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DDP wrapper (its attributes, its state dict without ``module.``)."""
    return getattr(model, "module", model)
