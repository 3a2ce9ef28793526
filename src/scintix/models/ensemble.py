"""Averaging probabilities: an ensemble of trained models, and test-time augmentation (TTA).

Both wrappers return *logits of the averaged probabilities* (``log`` of the
mean softmax, or ``logit`` of the mean sigmoid for multi-label), so everything
downstream (``task.activation``, thresholds, temperature 1) is unchanged.
Each member's own calibration temperature is applied before averaging.

>>> ens = Ensemble([model_a, model_b], temperatures=[1.2, 0.9])  # doctest: +SKIP
>>> tta = TTA(model, ["identity", "shift"])                         # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

__all__ = ["Ensemble", "TTA", "TTA_TRANSFORMS", "mean_probability_logits", "cam_layers"]

EPS = 1e-7


def mean_probability_logits(logit_list: Sequence[torch.Tensor], multilabel: bool) -> torch.Tensor:
    """Logits whose activation is the mean of the activations of ``logit_list``."""
    if multilabel:
        p = torch.stack([torch.sigmoid(z.float()) for z in logit_list]).mean(0).clamp(EPS, 1 - EPS)
        return torch.log(p) - torch.log1p(-p)
    p = torch.stack([torch.softmax(z.float(), dim=1) for z in logit_list]).mean(0).clamp_min(EPS)
    return torch.log(p)


class Ensemble(nn.Module):
    """The mean probability of several trained models (e.g. the k fold models of ``scintix cv``).

    Args:
        members: models with the same classes and inputs.
        temperatures: each member's calibration temperature (1 = none).
        multilabel: sigmoid outputs (else softmax).
    """

    def __init__(self, members: Sequence[nn.Module], temperatures: Sequence[float] | None = None, multilabel: bool = False) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(members)
        self.temperatures = [float(t) for t in (temperatures or [1.0] * len(members))]
        self.multilabel = multilabel
        first = members[0]
        self.inputs = getattr(first, "inputs", ("image",))
        self.kind, self.num_classes = getattr(first, "kind", "classification"), getattr(first, "num_classes", None)  # the model interface, as a member's
        # heat maps: the ensemble's output explained through every member's features, one map each, averaged
        self.cam_layers = [f"members.{i}.{name}" for i, m in enumerate(members) for name in cam_layers(m)]
        self.cam_layer = self.cam_layers[0] if self.cam_layers else None

    def forward(self, x: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        return mean_probability_logits([m(x, **extra) / t for m, t in zip(self.members, self.temperatures)], self.multilabel)


def cam_layers(model: nn.Module) -> list[str]:
    """The layer names a model's heat maps hook: ``cam_layers``, else ``[cam_layer]``, else none."""
    names = getattr(model, "cam_layers", None)
    if names:
        return list(names)
    return [model.cam_layer] if getattr(model, "cam_layer", None) else []


def _shift(dy: int, dx: int) -> Callable[[torch.Tensor], torch.Tensor]:
    def f(x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x)
        h, w = x.shape[-2:]
        out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = x[..., max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)]
        return out

    return f


# Named transform sets (each a list of functions on (B, C, H, W)); none flips, since left and right carry meaning in
# scintigraphy. "shift": 2-px shifts in the four directions (zero fill, the background of a scan).
TTA_TRANSFORMS: dict[str, list[Callable[[torch.Tensor], torch.Tensor]]] = {
    "identity": [lambda x: x],
    "shift": [_shift(2, 0), _shift(-2, 0), _shift(0, 2), _shift(0, -2)],
}


class TTA(nn.Module):
    """Mean probability of ``model`` over transformed copies of the input (``names`` from :data:`TTA_TRANSFORMS`)."""

    def __init__(self, model: nn.Module, names: Sequence[str], multilabel: bool = False) -> None:
        super().__init__()
        unknown = [n for n in names if n not in TTA_TRANSFORMS]
        if unknown or not names:
            raise ValueError(f"test-time augmentation {list(names)}: names among {sorted(TTA_TRANSFORMS)}")
        self.model = model
        self.transforms = [f for n in names for f in TTA_TRANSFORMS[n]]
        self.multilabel = multilabel
        self.inputs = getattr(model, "inputs", ("image",))
        self.kind, self.num_classes = getattr(model, "kind", "classification"), getattr(model, "num_classes", None)
        # heat maps: the layer runs once per transformed copy; each call gets a map (2-px shifts move a map by a fraction of a feature cell)
        self.cam_layers = [f"model.{name}" for name in cam_layers(model)]
        self.cam_layer = self.cam_layers[0] if self.cam_layers else None

    def forward(self, x: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        # a cross-feature image moves with the image; other inputs (text) are passed as they are
        return mean_probability_logits([self.model(f(x), **{k: (f(v) if k == "cross" else v) for k, v in extra.items()}) for f in self.transforms], self.multilabel)
