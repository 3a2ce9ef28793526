"""nnU-Net's intensity augmentation (noise, blur, contrast, gamma): each op as written down, replayable per image, the
same in the batched and per-sample paths, masks untouched, off unless asked for."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from scintix.transforms.augment import AugmentConfig, Augmenter
from scintix.transforms.batch_augment import BatchAugmenter
from scintix.transforms.intensity_augment import (
    IntensityParams,
    apply_intensity,
    has_intensity_ops,
    sample_intensity,
)


def test_gamma_and_contrast_follow_their_formulas_in_the_image_range():
    x = torch.tensor([[[[2.0, 4.0], [6.0, 10.0]]]])  # range 2..10, mean 5.5
    g = apply_intensity(x, [IntensityParams(gamma=2.0)])
    np.testing.assert_allclose(g.numpy().ravel(), [2 + 8 * ((v - 2) / 8) ** 2 for v in (2, 4, 6, 10)], rtol=1e-6)
    c = apply_intensity(x, [IntensityParams(contrast=1.5)])
    np.testing.assert_allclose(c.numpy().ravel(), np.clip([(v - 5.5) * 1.5 + 5.5 for v in (2, 4, 6, 10)], 2, 10), rtol=1e-6)
    assert c.min() == 2 and c.max() == 10  # the range is kept (nnU-Net's preserve_range)


def test_blur_is_a_normalised_gaussian_and_noise_is_seeded_in_the_image_range():
    x = torch.zeros(1, 1, 15, 15)
    x[0, 0, 7, 7] = 1.0
    b = apply_intensity(x, [IntensityParams(blur=1.0)])[0, 0]
    k = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    k /= k.sum()
    np.testing.assert_allclose(b[4:11, 4:11].numpy(), np.outer(k, k), atol=1e-6)  # a point spreads into the 2-D Gaussian
    assert float(b.sum()) == pytest.approx(1.0, abs=1e-5)
    flat = torch.full((1, 2, 6, 5), 3.0)
    assert torch.allclose(apply_intensity(flat, [IntensityParams(blur=2.5)]), flat)  # a wide kernel on a tiny image: a constant stays
    y = torch.rand(1, 1, 64, 64) * 100 + 50  # range ~100
    n1 = apply_intensity(y, [IntensityParams(noise=0.1, noise_seed=3)]) - y
    n2 = apply_intensity(y, [IntensityParams(noise=0.1, noise_seed=3)]) - y
    assert torch.equal(n1, n2) and float(n1.std()) == pytest.approx(0.1 * float(y.max() - y.min()), rel=0.05)


def test_draws_are_replayable_and_off_by_default():
    assert not has_intensity_ops(AugmentConfig())  # recipes that do not ask get exactly what they got before
    assert Augmenter(AugmentConfig(prob=0, flip_prob=0)).is_identity()
    cfg = AugmentConfig(prob=0, flip_prob=0, noise=0.05, blur=1.0, contrast=0.25, gamma=0.5, intensity_prob=0.5)
    assert not Augmenter(cfg).is_identity()
    draws = [sample_intensity(cfg, s) for s in range(400)]
    assert draws[7] == sample_intensity(cfg, 7) != draws[8]
    for field in ("noise", "blur", "contrast", "gamma"):
        used = [getattr(d, field) for d in draws if getattr(d, field) != (1.0 if field in ("contrast", "gamma") else 0.0)]
        assert 0.4 < len(used) / len(draws) < 0.6  # each op on about intensity_prob of the images
    assert max(d.noise for d in draws) <= 0.05 and max(d.blur for d in draws) <= 1.0
    assert all(0.75 <= d.contrast <= 1.25 and 1 / 1.5 <= d.gamma <= 1.5 for d in draws)
    assert min(d.gamma for d in draws) < 0.75 and max(d.gamma for d in draws) > 1.35  # both directions


def test_batched_and_per_sample_paths_give_the_same_image_and_leave_masks_alone():
    cfg = AugmentConfig(prob=0.0, flip_prob=0.0, noise=0.05, blur=1.0, contrast=0.25, gamma=0.5, intensity_prob=1.0)
    x = torch.rand(3, 1, 24, 16) * 4
    mask = (torch.rand(3, 1, 24, 16) > 0.7).long()
    seeds = torch.tensor([5, 6, 7])
    out = BatchAugmenter(cfg)({"image": x, "mask": mask, "aug_seed": seeds})
    assert torch.equal(out["mask"], mask) and not torch.allclose(out["image"], x)
    alone = BatchAugmenter(cfg)({"image": x[1:2], "aug_seed": seeds[1:2]})["image"]
    assert torch.allclose(out["image"][1:2], alone, atol=1e-6)  # the same image and seed, alone or in a batch
    for i in range(3):
        img, m, _ = Augmenter(cfg).apply(x[i].numpy(), int(seeds[i]), mask=mask[i].numpy())
        np.testing.assert_allclose(img, out["image"][i].numpy(), atol=1e-5)
        assert np.array_equal(m, mask[i].numpy())


@pytest.mark.parametrize("bad", [{"contrast": 1.0}, {"gamma": -0.1}, {"noise": -1}, {"intensity_prob": 1.5}, {"blur": float("nan")}])
def test_bad_settings_are_refused_naming_the_key(bad):
    with pytest.raises(ValueError, match=f"augment.{next(iter(bad))}"):
        dataclasses.replace(AugmentConfig(), **bad)
