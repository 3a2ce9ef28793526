"""Focal losses (Lin et al., ICCV 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``.

Easy, confidently right examples (most normal crops, at ~6 % prevalence) then
weigh little and the hard ones drive training. ``gamma = 0`` is exactly the
plain loss, class weights included, so the two are one family.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FocalCrossEntropy(nn.Module):
    """Softmax focal loss; ``weight`` and ``label_smoothing`` as :class:`torch.nn.CrossEntropyLoss` (the same weighted mean)."""

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.gamma, self.label_smoothing = float(gamma), float(label_smoothing)
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ce = F.cross_entropy(logits, target, weight=self.weight, reduction="none", label_smoothing=self.label_smoothing)
        p_true = torch.softmax(logits, dim=1).gather(1, target[:, None]).squeeze(1)
        norm = self.weight[target].sum() if self.weight is not None else torch.tensor(float(len(target)), device=logits.device)
        return ((1 - p_true).clamp_min(0).pow(self.gamma) * ce).sum() / norm


class FocalBCE(nn.Module):
    """Sigmoid focal loss per label (multi-label); ``pos_weight`` as :class:`torch.nn.BCEWithLogitsLoss`, mean over labels and samples."""

    def __init__(self, gamma: float = 2.0, pos_weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=self.pos_weight, reduction="none")
        p = torch.sigmoid(logits)
        p_true = p * target + (1 - p) * (1 - target)
        return ((1 - p_true).clamp_min(0).pow(self.gamma) * bce).mean()
