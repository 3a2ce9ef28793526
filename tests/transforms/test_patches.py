import numpy as np
import torch
from torch import nn

from scintix.models.segmentation import Segmenter
from scintix.transforms.patches import sample_patch


def test_patches_oversample_small_lesions_and_stay_aligned():
    img = np.random.default_rng(0).random((1, 100, 40)).astype(np.float32)
    mask = np.zeros((1, 100, 40), np.uint8)
    mask[0, 80:83, 30:33] = 1  # a 9-pixel lesion
    img[mask > 0] = 5.0
    hits = {0.0: 0, 0.5: 0}
    for fg in hits:
        for s in range(400):
            x, m, _, (top, left) = sample_patch(img, mask, (20, 16), np.random.default_rng(s), fg)
            assert x.shape == (1, 20, 16) and m.shape == (1, 20, 16)
            assert np.array_equal(x, img[:, top : top + 20, left : left + 16]) and np.array_equal(m, mask[:, top : top + 20, left : left + 16])
            hits[fg] += bool(m.any())
    assert hits[0.0] / 400 < 0.2  # random crops rarely see the lesion
    assert hits[0.5] / 400 > 0.45  # half of the crops are centred on it
    small, m, _, _ = sample_patch(img[:, :10, :8], mask[:, :10, :8], (20, 16), np.random.default_rng(0))
    assert small.shape == (1, 20, 16) and m.shape == (1, 20, 16)  # padded when the image is smaller


def test_sliding_window_equals_a_whole_image_pass_for_a_pointwise_net():
    torch.manual_seed(0)
    seg = Segmenter(nn.Conv2d(1, 2, 1), num_classes=2, multiple=1, cam_layer="net")
    seg.roi_size = (16, 16)
    x = torch.randn(2, 1, 40, 30)
    with torch.no_grad():
        full = seg.net(x)
        windowed = seg.eval()(x)
    assert windowed.shape == (2, 2, 40, 30) and torch.allclose(windowed, full, atol=1e-5)
