"""Fine-tuning from a local weight file in torchvision/timm layout; nothing is ever downloaded.

``load_pretrained(model, name, path)`` renames the file's keys into scintix's
layout for the model's family, adapts a 3-channel first convolution to the
model's input channels, skips the classifier when its shape differs (a new
head), and refuses a file that matches too little of the backbone (the wrong
architecture) instead of silently training from scratch.

First-conv adaptation (``reduce``):
  - ``sum``: channel weights summed, then divided by the new channel count, so
    a grey image repeated in every input channel gives the pretrained
    response to that grey image in RGB (timm's convention for 1 channel);
  - ``mean``: every new channel gets the mean of the RGB weights.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Callable, Literal

import torch
from torch import nn

__all__ = ["load_pretrained", "torchvision_key", "adapt_first_conv", "freeze_backbone", "train_only", "FIRST_CONV"]

log = logging.getLogger(__name__)

# The scintix key of each family's first convolution weight.
FIRST_CONV = {
    "resnet": "features.conv1.weight",
    "densenet": "features.0.conv0.weight",
    "vgg": "features.0.weight",
    "alexnet": "features.0.weight",
}


def family(name: str) -> str:
    for fam in ("densenet", "alexnet", "vgg", "resnet"):
        if name.startswith(fam):
            return fam
    raise KeyError(f"no torchvision weight layout is known for {name!r}; families: resnet*, densenet*, vgg*, alexnet")


def _family_or_none(name: str) -> str | None:
    try:
        return family(name)
    except KeyError:
        return None


def torchvision_key(fam: str) -> Callable[[str], str]:
    """A function mapping a torchvision (or timm ResNet/DenseNet) key to the scintix key."""
    if fam == "resnet":
        return lambda k: k if k.startswith("fc.") else f"features.{k}"
    if fam == "densenet":

        def dn(k: str) -> str:
            if k.startswith("classifier."):
                return "fc." + k.split(".", 1)[1]
            k = re.sub(r"(denselayer\d+)\.(norm1|conv1|norm2|conv2)\.", r"\1.layers.\2.", k)
            return k.replace("features.", "features.0.", 1)

        return dn
    if fam in ("vgg", "alexnet"):
        head = {"vgg": {"0": "pre_logits.2", "3": "pre_logits.5", "6": "fc"}, "alexnet": {"1": "pre_logits.3", "4": "pre_logits.6", "6": "fc"}}[fam]

        def cls(k: str) -> str:
            m = re.match(r"classifier\.(\d+)\.(.*)", k)
            return f"{head[m.group(1)]}.{m.group(2)}" if m and m.group(1) in head else k

        return cls
    raise KeyError(fam)


def adapt_first_conv(weight: torch.Tensor, in_channels: int, reduce: Literal["sum", "mean"] = "sum") -> torch.Tensor:
    """``(out, 3, k, k)`` -> ``(out, in_channels, k, k)``."""
    if weight.shape[1] == in_channels:
        return weight
    if reduce == "sum":
        w = weight.sum(dim=1, keepdim=True) / in_channels
    elif reduce == "mean":
        w = weight.mean(dim=1, keepdim=True)
    else:
        raise ValueError(f"reduce must be 'sum' or 'mean', got {reduce!r}")
    return w.repeat(1, in_channels, 1, 1)


def load_pretrained(model: nn.Module, name: str, path: str | Path, reduce: Literal["sum", "mean"] = "sum", layout: str = "auto") -> dict[str, list[str]]:
    """Load a local state dict into ``model`` (built by ``create_model(name, ...)``).

    Args:
        layout: ``torchvision`` (also timm's ResNet/DenseNet keys), ``scintix``
            (a scintix checkpoint), or ``auto`` (decided from the keys).

    Returns:
        ``{"loaded": [...], "skipped": [...], "missing": [...]}`` key lists.

    Raises:
        ValueError: under half of the model's backbone tensors were found in the file.
    """
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DDP checkpoints
    own = model.state_dict()
    if layout not in ("auto", "scintix", "torchvision"):
        raise ValueError(f"layout must be auto, scintix or torchvision, got {layout!r}")
    if layout != "scintix":
        fam = family(name) if layout == "torchvision" else _family_or_none(name)
        if fam is not None:
            mapper = torchvision_key(fam)
            mapped = {mapper(k): v for k, v in state.items()}
            # auto: whichever naming matches more of the model (VGG's features.N
            # keys are the same in both, so a majority vote alone is not enough).
            if layout == "torchvision" or sum(k in own for k in mapped) > sum(k in own for k in state):
                state = mapped
                first = FIRST_CONV[fam]
                if first in state and first in own and state[first].shape != own[first].shape:
                    state[first] = adapt_first_conv(state[first], own[first].shape[1], reduce)
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    skipped = sorted(set(state) - set(usable))
    # A model whose image path is one submodule (a report-guided segmenter: `net.`) names it, so a plain
    # U-Net checkpoint is a full match for that path and the text layers it lacks are left at init (warm start).
    prefix = getattr(model, "backbone_prefix", "")
    backbone = [k for k in own if k.startswith(prefix) and not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    found = sum(k in usable for k in backbone)
    if found < len(backbone) / 2:
        raise ValueError(f"{path}: only {found} of {len(backbone)} backbone tensors of {name!r} match this file (wrong architecture or layout?); e.g. file keys {list(state)[:3]}")
    model.load_state_dict(usable, strict=False)
    missing = sorted(k for k in own if k not in usable)
    log.info("%s: loaded %d tensors, skipped %d (e.g. a new head), left %d at init", path, len(usable), len(skipped), len(missing))
    return {"loaded": sorted(usable), "skipped": skipped, "missing": missing}


def freeze_backbone(model: nn.Module, frozen: bool = True) -> None:
    """Freeze (or unfreeze) everything but the final classifier ``fc``."""
    for n, p in model.named_parameters():
        if not n.startswith("fc."):
            p.requires_grad_(not frozen)


def train_only(model: nn.Module, patterns) -> tuple[int, int]:
    """Freeze every parameter whose name matches none of the glob ``patterns`` (e.g. ``features.layer4.*``, ``*.cross.*``, ``fc.*``).

    Returns ``(trainable, total)`` parameter counts. Raises ``ValueError`` when no parameter matches.
    """
    from fnmatch import fnmatchcase

    names = [n for n, _ in model.named_parameters()]
    keep = {n for n in names if any(fnmatchcase(n, p) for p in patterns)}
    if not keep:
        raise ValueError(f"model.train_only={list(patterns)} matches no parameter of this model (names look like {names[:2]} ... {names[-1:]})")
    total = trainable = 0
    for n, p in model.named_parameters():
        p.requires_grad_(n in keep)
        total += p.numel()
        trainable += p.numel() if n in keep else 0
    return trainable, total
