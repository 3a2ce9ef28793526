import numpy as np
import pytest

from scintix.transforms.augment import AugmentConfig, Augmenter
from scintix.transforms.functional import normalize_intensity, resize_pad
from scintix.transforms.offline import apply_params, expand_dataset


def test_normalisations_by_hand():
    a = np.array([[[0.0, 1.0], [2.0, 5.0]]], np.float32)
    np.testing.assert_array_equal(normalize_intensity(a, "none"), a)
    np.testing.assert_allclose(normalize_intensity(a, "minmax"), [[[0, 0.2], [0.4, 1.0]]])
    z = normalize_intensity(a, "zscore")
    np.testing.assert_allclose([z.mean(), z.std()], [0, 1], atol=1e-6)
    p = normalize_intensity(a, "percentile", (0, 50))  # clip at the median (1.5)
    np.testing.assert_allclose(p, [[[0, 2 / 3], [1, 1]]], rtol=1e-6)
    assert np.all(normalize_intensity(np.ones((1, 3, 3)), "minmax") == 0)  # constant: 0, not NaN
    with pytest.raises(ValueError, match="choose from"):
        normalize_intensity(a, "histogram")


def test_resize_pad_keeps_aspect_and_identity():
    a = np.random.default_rng(0).random((1, 171, 68)).astype(np.float32)
    np.testing.assert_array_equal(resize_pad(a, (171, 68)), a)
    out = resize_pad(a, (128, 64))
    assert out.shape == (1, 128, 64)
    # 171x68 scaled by 128/171 -> 128x51: 13 padded columns split 6 left / 7 right, at the image minimum
    assert np.all(out[:, :, :6] == a.min()) and np.all(out[:, :, -7:] == a.min())
    assert np.all(out[:, :, 6:-7] > a.min() - 1e-6)
    wide = resize_pad(np.ones((1, 10, 40), np.float32), (20, 20), pad_value=0)
    assert wide.shape == (1, 20, 20) and wide[0, 0, 0] == 0 and wide[0, 10, 10] == 1


def test_augment_identity_params_change_nothing():
    x = np.random.default_rng(1).random((1, 32, 16)).astype(np.float32)
    for cfg in (AugmentConfig(enabled=False), AugmentConfig(rotate_deg=0, translate=0, scale=0, flip_prob=0), AugmentConfig(prob=0.0)):
        np.testing.assert_array_equal(Augmenter(cfg)(x, seed=5), x)


def test_augment_replays_from_seed_and_varies_across_seeds():
    x = np.random.default_rng(1).random((1, 32, 16)).astype(np.float32)
    aug = Augmenter(AugmentConfig(prob=1.0, flip_prob=0.5))
    a, b, c = aug(x, 7), Augmenter(AugmentConfig(prob=1.0, flip_prob=0.5))(x, 7), aug(x, 8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and a.shape == x.shape


def test_offline_params_identity_and_flip():
    x = np.random.default_rng(2).random((1, 20, 10)).astype(np.float32)
    ident = {"rotate_deg": 0.0, "shift_y": 0.0, "shift_x": 0.0, "scale": 1.0, "flip": 0.0}
    np.testing.assert_allclose(apply_params(x, ident), x, atol=1e-5)
    np.testing.assert_allclose(apply_params(x, {**ident, "flip": 1.0}), x[..., ::-1], atol=1e-5)


def test_expand_dataset_only_train_and_records_provenance(tiny_manifest, tmp_path):
    from scintix.data.manifest import read_manifest

    recs = read_manifest(tiny_manifest)
    splits = {r.path: ("train" if i < 10 else "test") for i, r in enumerate(recs)}
    manifest, errors = expand_dataset(recs, splits, tmp_path / "aug", copies=2, seed=0)
    out = read_manifest(manifest)
    assert not errors and len(out) == len(recs) + 2 * 10
    copies = [r for r in out if "source_path" in r.extra and r.extra["source_path"]]
    assert len(copies) == 20 and all(r.split == "train" for r in copies)
    src = {r.path: r for r in recs}
    assert all(src[c.extra["source_path"]].patient_id == c.patient_id for c in copies)
    # The recorded parameters regenerate the copy exactly.
    from scintix.data.io import read_image

    c = copies[3]
    params = {k[4:]: float(v) for k, v in c.extra.items() if k.startswith("aug_") and k != "aug_seed"}
    np.testing.assert_allclose(read_image(c.path)[0], apply_params(read_image(c.extra["source_path"])[0], params), atol=1e-5)


def test_paired_augmentation_moves_image_and_mask_together():
    """A square moved by the sampled affine lands where an independent computation (scipy) puts it; the mask keeps its labels."""
    from scipy import ndimage

    from scintix.transforms.augment import AugmentConfig, Augmenter

    aug = Augmenter(AugmentConfig(prob=1.0, rotate_deg=20, translate=0.1, scale=0.15, flip_prob=0.0, intensity=0.1))
    h, w = 40, 30
    mask = np.zeros((1, h, w), np.uint8)
    mask[0, 8:16, 6:12] = 2  # a class-2 square
    img = np.where(mask > 0, 5.0, 0.0).astype(np.float32)
    for seed in (1, 123, 777):
        x, m, _ = aug.apply(img, seed, mask=mask)
        A = np.asarray(aug.affine.rand_affine_grid.affine)  # output -> input, coordinates centred on the image
        M, t, c = A[:2, :2], A[:2, 2], np.array([(h - 1) / 2, (w - 1) / 2])
        expected = ndimage.affine_transform(mask[0].astype(float), M, offset=c + t - M @ c, order=0, mode="constant", cval=0)
        assert np.array_equal(m[0], expected.astype(np.uint8))
        assert set(np.unique(m)) <= {0, 2}  # nearest neighbour: no blended labels
        assert np.allclose(ndimage.center_of_mass(x[0] > 2.5), ndimage.center_of_mass(m[0] > 0), atol=1.0)
        assert np.array_equal(aug(img, seed), x)  # the image alone gets the very same transform
