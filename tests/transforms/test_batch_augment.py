"""The batched augmentation: MONAI's geometry, replayable per image, masks by nearest neighbour, moved with the image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scintix.transforms.augment import AugmentConfig
from scintix.transforms.batch_augment import (
    AffineParams,
    BatchAugmenter,
    affine_matrix,
    sample_params,
    warp,
)


@pytest.mark.parametrize("p", [AffineParams(True, 0.3, (1.1, 0.9), (2.5, -1.5), False, 1.0), AffineParams(True, -0.2, (0.95, 1.05), (0.0, 3.0), True, 1.0),
                               AffineParams(True, 0.05, (1.0, 1.0), (-4.0, 0.0), False, 1.0)])
def test_geometry_matches_monai_affine(p):
    from monai.transforms import Affine

    img = np.random.default_rng(0).random((1, 40, 24)).astype(np.float32)
    ref = np.asarray(Affine(rotate_params=p.angle, scale_params=p.scale, translate_params=p.shift, padding_mode="zeros", mode="bilinear", image_only=True)(torch.as_tensor(img)))
    if p.flip:
        ref = ref[:, :, ::-1]  # MONAI's RandFlip on the column axis, after the affine
    out = warp(torch.from_numpy(img)[None], torch.from_numpy(affine_matrix(p))[None])[0].numpy()
    assert np.abs(out - ref).max() < 1e-4


def test_replayable_per_image_whatever_the_batch():
    aug = BatchAugmenter(AugmentConfig(prob=1.0, rotate_deg=10, translate=0.1, scale=0.1, flip_prob=0.5, intensity=0.1))
    x = torch.rand(4, 1, 32, 20)
    a = aug({"image": x, "aug_seed": torch.tensor([11, 12, 13, 14])})["image"]
    b = aug({"image": x, "aug_seed": torch.tensor([11, 12, 13, 14])})["image"]
    c = aug({"image": x[2:3], "aug_seed": torch.tensor([13])})["image"]
    assert torch.equal(a, b) and torch.allclose(a[2:3], c, atol=1e-6)  # the same seed, the same transform, alone or in a batch
    assert not torch.allclose(a[0], x[0])
    assert sample_params(aug.cfg, 11, (32, 20)) == sample_params(aug.cfg, 11, (32, 20)) != sample_params(aug.cfg, 12, (32, 20))


def test_mask_moves_with_the_image_and_keeps_its_labels():
    aug = BatchAugmenter(AugmentConfig(prob=1.0, rotate_deg=15, translate=0.1, scale=0.1, flip_prob=0.5))
    x = torch.zeros(6, 1, 48, 32)
    mask = torch.zeros(6, 1, 48, 32, dtype=torch.long)
    x[:, :, 10:18, 8:14] = 1.0
    mask[:, :, 10:18, 8:14] = 2
    out = aug({"image": x, "mask": mask, "aug_seed": torch.arange(6)})
    assert set(out["mask"].unique().tolist()) <= {0, 2} and out["mask"].dtype == torch.long
    for i in range(6):
        img_c = torch.nonzero(out["image"][i, 0] > 0.5).float().mean(0)
        mask_c = torch.nonzero(out["mask"][i, 0] > 0).float().mean(0)
        assert torch.allclose(img_c, mask_c, atol=1.0)  # same place after the transform


def test_no_transform_leaves_the_image_alone():
    aug = BatchAugmenter(AugmentConfig(prob=0.0, flip_prob=0.0))
    x = torch.rand(3, 2, 16, 12) + 5.0
    assert torch.allclose(aug({"image": x, "aug_seed": torch.arange(3)})["image"], x, atol=1e-5)


def test_cached_dataset_defers_to_the_batch(tmp_path):
    from PIL import Image

    from scintix.data.datasets import CachedDataset, Sample
    from scintix.transforms.augment import Augmenter

    Image.fromarray((np.random.default_rng(0).random((24, 16)) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    s = [Sample((str(tmp_path / "a.png"),), np.array(1), "A")]
    plain = CachedDataset(s, (24, 16), "minmax")
    deferred = CachedDataset(s, (24, 16), "minmax", augment=Augmenter(AugmentConfig(prob=1.0)), batch_augment=True)
    item = deferred[0]
    assert torch.equal(item["image"], plain[0]["image"]) and "aug_seed" in item
    deferred.set_epoch(1)
    assert deferred[0]["aug_seed"] != item["aug_seed"]  # a new epoch, a new transform
    with pytest.raises(ValueError, match="patch"):
        CachedDataset(s, (24, 16), "minmax", augment=Augmenter(AugmentConfig()), patch_size=(8, 8), batch_augment=True)
