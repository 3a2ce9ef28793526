"""Focal losses: gamma 0 is the plain loss exactly; gamma > 0 shrinks the easy examples' share."""

import pytest
import torch
from torch import nn

from scintix.tasks import get_task
from scintix.tasks.losses import FocalBCE, FocalCrossEntropy


def test_focal_gamma_zero_is_plain_cross_entropy_weights_and_smoothing_included():
    torch.manual_seed(0)
    x, y = torch.randn(16, 3), torch.randint(0, 3, (16,))
    w = torch.tensor([1.0, 4.0, 0.5])
    for weight, smooth in ((None, 0.0), (w, 0.0), (w, 0.1)):
        assert FocalCrossEntropy(0.0, weight, smooth)(x, y) == pytest.approx(nn.CrossEntropyLoss(weight=weight, label_smoothing=smooth)(x, y).item(), rel=1e-6)
    t = torch.randint(0, 2, (16, 3)).float()
    assert FocalBCE(0.0, w)(x, t) == pytest.approx(nn.BCEWithLogitsLoss(pos_weight=w)(x, t).item(), rel=1e-6)


def test_focal_down_weights_easy_examples():
    logits = torch.tensor([[4.0, -4.0], [0.2, -0.2]])  # both class 0: the first is easy (p ~ 1), the second hard (p ~ 0.6)
    y = torch.tensor([0, 0])
    ce = nn.functional.cross_entropy(logits, y, reduction="none")
    p = torch.softmax(logits, 1)[:, 0]
    assert FocalCrossEntropy(2.0)(logits, y) == pytest.approx((((1 - p) ** 2) * ce).mean().item(), rel=1e-6)  # by hand
    easy_share = (((1 - p[0]) ** 2) * ce[0]) / (((1 - p) ** 2) * ce).sum()
    assert easy_share < 1e-4 < (ce[0] / ce.sum())  # the easy example's share collapses


def test_tasks_build_focal_criteria():
    assert isinstance(get_task("binary").criterion(None, 0.0, 2.0), FocalCrossEntropy)
    assert isinstance(get_task("multilabel").criterion(None, 0.0, 2.0), FocalBCE)
    assert isinstance(get_task("binary").criterion(None), nn.CrossEntropyLoss)
    with pytest.raises(ValueError, match="focal_gamma"):
        get_task("segmentation").criterion(None, 0.0, 2.0)
