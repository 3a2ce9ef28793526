"""Report grounding (a report -> where its lesions are) and its late fusion with a U-Net's logits."""

import numpy as np
import pytest
import torch

from scintix.models.grounding import ReportGrounding, fused_logit, lesion_logit
from scintix.text.tokenizer import build_tokenizer
from scintix.training.grounding import choose_fusion, fit_grounding

H, W = 32, 16


def _toy(n: int, seed: int):
    """Bodies at different heights; one lesion on the side the report names, at a fixed place in the body's frame."""
    rng = np.random.default_rng(seed)
    images, masks, reports = torch.zeros(n, 1, H, W), torch.zeros(n, H, W), []
    for i in range(n):
        top = int(rng.integers(0, 8))
        images[i, 0, top : top + 24, 2:14] = 1.0
        side = rng.integers(0, 2)
        y = top + 12
        x = 4 if side == 0 else 11
        masks[i, y - 1 : y + 1, x - 1 : x + 1] = 1
        reports.append(f"one lesion on the {'left' if side == 0 else 'right'} side")
    return images, masks, reports


def test_the_map_learns_which_side_a_report_names_and_the_best_epoch_is_kept():
    xi, mi, ri = _toy(48, 0)
    xv, mv, rv = _toy(24, 1)
    fit = fit_grounding(ri, xi, mi, rv, xv, mv, epochs=25, batch_size=16, lr=3e-3, seed=0, patience=25, dim=32)
    assert 1 <= fit.best_epoch <= len(fit.history) == 25
    assert fit.history[fit.best_epoch - 1]["val_loss"] == min(h["val_loss"] for h in fit.history)
    maps = fit.model.maps_for(rv, xv)
    assert maps.shape == (24, H, W)
    left, right = maps[:, :, :8].mean((1, 2)), maps[:, :, 8:].mean((1, 2))
    named_left = torch.tensor(["left" in r for r in rv])
    correct = torch.where(named_left, left > right, right > left)
    assert correct.float().mean() >= 0.9
    # the lesion's pixels outrank the rest of their scan
    assert float((maps * mv).sum() / mv.sum()) > float((maps * (1 - mv)).sum() / (1 - mv).sum())


def test_a_scan_without_a_report_gets_a_zero_map_and_alpha_zero_is_the_unet():
    model = ReportGrounding(build_tokenizer(["left lesion", "right lesion"], "word", 8), dim=16, layers=1, heads=2)
    torch.nn.init.normal_(model.prior.vote.weight)  # a trained-looking map, not the zero start
    x, _, _ = _toy(3, 2)
    maps = model.maps_for(["left lesion", None, ""], x)
    assert maps[0].abs().sum() > 0 and torch.all(maps[1:] == 0)
    logits = torch.randn(3, 2, H, W)
    les = lesion_logit(logits)
    assert torch.allclose(torch.sigmoid(les), torch.softmax(logits, 1)[:, 1], atol=1e-6)
    assert torch.equal(fused_logit(les, maps, 0.0), les)
    with pytest.raises(ValueError, match="binary segmenter"):
        lesion_logit(torch.randn(3, 3, H, W))
    with pytest.raises(ValueError, match="2 reports for 3 frames"):
        model(["a", "b"], torch.zeros(3, 3), (H, W))


def test_choose_fusion_trusts_an_informative_map_and_ignores_an_empty_one():
    rng = np.random.default_rng(0)
    truth = rng.random((20, H, W)) < 0.05
    logits = np.where(truth, 0.3, -0.3) + rng.normal(0, 1.0, truth.shape)  # a weak image path
    informative = np.where(truth, 4.0, -4.0)
    alpha, thr, table = choose_fusion(logits, informative, truth)
    assert alpha > 0 and [r["alpha"] for r in table] == sorted(r["alpha"] for r in table)
    best_dice = max(r["val_pooled_dice"] for r in table)
    assert best_dice > table[0]["val_pooled_dice"] + 0.2  # far above the image alone (alpha 0)
    alpha0, thr0, table0 = choose_fusion(logits, np.zeros_like(logits), truth)
    assert alpha0 == 0.0 and thr0 == table0[0]["threshold"]  # no information: the U-Net with its own threshold
    with pytest.raises(ValueError, match="must match"):
        choose_fusion(logits, informative[:, :4], truth)
