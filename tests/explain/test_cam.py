import numpy as np
import pytest
import torch
from conftest import one_per_family

from scintix.explain.cam import (
    CAM_METHODS,
    GradCAM,
    GradCAMPlusPlus,
    OcclusionCAM,
    ScoreCAM,
)
from scintix.models import create_model, list_models


def _blob_batch(rng, n, size=32):
    """Class 1 iff a bright blob is present; its position is random. Noise everywhere."""
    x = rng.normal(0, 0.3, size=(n, 1, size, size)).astype(np.float32)
    y = rng.integers(0, 2, n)
    centres = rng.integers(6, size - 6, size=(n, 2))
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        if y[i]:
            x[i, 0] += 3.0 * np.exp(-((yy - centres[i, 0]) ** 2 + (xx - centres[i, 1]) ** 2) / (2 * 2.0**2))
    return torch.from_numpy(x), torch.from_numpy(y), centres


@pytest.fixture(scope="module")
def blob_model():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = create_model("small_cnn", in_channels=1, num_classes=2, small_input=True)  # 8x8 CAM layer at 32 px
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(50):  # 12/12 peaks on the blob from here for every method (80 steps: the same; 40: 11/12)
        x, y, _ = _blob_batch(rng, 32)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    x, y, _ = _blob_batch(np.random.default_rng(99), 200)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9, acc  # the model must have learnt the blob for the test to mean anything
    return model


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam", "occlusion"])
def test_map_peaks_on_the_blob(blob_model, method):
    x, y, centres = _blob_batch(np.random.default_rng(5), 24)
    pos = y.numpy() == 1
    cam = CAM_METHODS[method](blob_model, task="binary")
    maps, targets = cam(x[pos], targets=1)
    assert maps.shape == (pos.sum(), 32, 32) and (targets == 1).all()
    hits = 0
    for m, (cy, cx) in zip(maps, centres[pos]):
        py, px = np.unravel_index(np.argmax(m), m.shape)
        hits += np.hypot(py - cy, px - cx) <= 6
    assert hits >= 0.8 * pos.sum(), (method, hits, pos.sum())


@pytest.mark.parametrize("method", ["gradcam", "gradcam++", "scorecam", "occlusion"])
def test_batch_equals_per_image(blob_model, method):
    x, _, _ = _blob_batch(np.random.default_rng(6), 4)
    cam = CAM_METHODS[method](blob_model, task="binary")
    batch, _ = cam(x, targets=[1, 0, 1, 1])
    for i, t in enumerate([1, 0, 1, 1]):
        single, _ = cam(x[i : i + 1], targets=t)
        np.testing.assert_allclose(batch[i], single[0], atol=1e-4)


@pytest.mark.parametrize("name", one_per_family(list_models("classification")))
def test_every_model_gets_normalised_maps(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=2, num_classes=3).eval()
    x = torch.randn(2, 2, 96, 64)
    for cls in (GradCAM, GradCAMPlusPlus):
        maps, targets = cls(model, task="multiclass")(x)
        assert maps.shape == (2, 96, 64) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
        assert targets.tolist() == model(x).argmax(1).tolist()
    maps, _ = ScoreCAM(model, task="multilabel", max_channels=4)(x, targets=2)
    assert maps.shape == (2, 96, 64) and maps.min() >= 0 and maps.max() <= 1 + 1e-6


@pytest.mark.parametrize("name", list_models("segmentation"))
def test_segmenters_get_maps_of_the_lesion_class(name):
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=2).eval()
    x = torch.zeros(2, 1, 48, 40)
    x[:, :, 10:18, 8:16] = 3.0  # a bright square
    for cls in (GradCAM, GradCAMPlusPlus):
        maps, targets = cls(model, task="segmentation")(x)
        assert maps.shape == (2, 48, 40) and maps.min() >= 0 and maps.max() <= 1 + 1e-6
        assert targets.tolist() == [1, 1]  # the lesion class by default
    maps, _ = ScoreCAM(model, task="segmentation", max_channels=4)(x)
    assert maps.shape == (2, 48, 40) and np.isfinite(maps).all()


def test_multilabel_targets_choose_different_maps():
    torch.manual_seed(1)
    model = create_model("small_cnn", in_channels=1, num_classes=3).eval()
    x = torch.randn(1, 1, 32, 32)
    a, _ = GradCAM(model, task="multilabel")(x, targets=0)
    b, _ = GradCAM(model, task="multilabel")(x, targets=2)
    assert not np.allclose(a, b)


def test_occlusion_needs_no_layer():
    model = create_model("small_cnn", in_channels=1, num_classes=2).eval()
    maps, _ = OcclusionCAM(model, grid=4)(torch.randn(2, 1, 16, 16))
    assert maps.shape == (2, 16, 16)


def _mean_map(maps):
    m = torch.from_numpy(np.mean(maps, axis=0))
    from scintix.explain.cam import normalize_maps

    return normalize_maps(m).numpy()


def test_an_ensemble_map_is_the_mean_of_its_members_maps():
    """Every member explains itself (not member 0 for all): for a binary task the ensemble's map is the mean of the members' own maps."""
    from scintix.models.ensemble import Ensemble

    torch.manual_seed(0)
    members = [create_model("small_cnn", in_channels=1, num_classes=2, small_input=True).eval() for _ in range(3)]
    x = torch.randn(4, 1, 32, 32)
    own = [GradCAM(m, task="binary")(x, targets=1)[0] for m in members]
    ens, _ = GradCAM(Ensemble(members, [1.3, 0.8, 1.0]), task="binary")(x, targets=1)
    np.testing.assert_allclose(ens, _mean_map(own), atol=1e-4)
    assert np.abs(ens - own[0]).max() > 0.05  # not the first member's map


def test_a_tta_map_averages_the_transformed_copies():
    from scintix.models.ensemble import TTA, TTA_TRANSFORMS

    torch.manual_seed(0)
    model = create_model("small_cnn", in_channels=1, num_classes=2, small_input=True).eval()
    x = torch.randn(2, 1, 32, 32)
    alone, _ = GradCAM(model)(x, targets=1)
    np.testing.assert_allclose(GradCAM(TTA(model, ["identity"]))(x, targets=1)[0], alone, atol=1e-5)
    copies = [GradCAM(model)(f(x), targets=1)[0] for name in ("identity", "shift") for f in TTA_TRANSFORMS[name]]
    np.testing.assert_allclose(GradCAM(TTA(model, ["identity", "shift"]))(x, targets=1)[0], _mean_map(copies), atol=1e-4)


def test_a_sliding_window_segmenter_is_explained_in_one_whole_image_pass():
    torch.manual_seed(0)
    model = create_model("unet", in_channels=1, num_classes=2).eval()
    x = torch.zeros(1, 1, 64, 48)
    x[:, :, 10:18, 8:16] = 3.0
    whole, _ = GradCAM(model, task="segmentation")(x)
    model.roi_size = (32, 32)  # as if trained on 32-px patches: inference would go by windows
    windowed, _ = GradCAM(model, task="segmentation")(x)
    np.testing.assert_allclose(windowed, whole, atol=1e-5)
    assert model.roi_size == (32, 32)  # restored
