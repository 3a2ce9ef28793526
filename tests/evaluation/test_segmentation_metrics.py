import math

import numpy as np
import pytest

from scintix.evaluation.bootstrap import bootstrap_ratio_ci
from scintix.evaluation.segmentation import (
    dice,
    hd95,
    image_metrics,
    iou,
    lesion_detection,
)
from scintix.tasks import get_task


def _mask(shape, *boxes):
    m = np.zeros(shape, bool)
    for y0, y1, x0, x1 in boxes:
        m[y0:y1, x0:x1] = True
    return m


def test_dice_iou_against_hand_counts():
    truth = _mask((6, 6), (1, 3, 1, 3))  # 4 px
    pred = _mask((6, 6), (1, 3, 2, 4))  # 4 px, 2 overlap
    assert dice(pred, truth) == pytest.approx(2 * 2 / (4 + 4))
    assert iou(pred, truth) == pytest.approx(2 / 6)
    assert dice(truth, truth) == 1.0 and iou(truth, truth) == 1.0


def test_empty_truth_empty_prediction_and_both_empty():
    empty = np.zeros((5, 5), bool)
    lesion = _mask((5, 5), (1, 2, 1, 2))
    # empty prediction on a lesion: Dice 0, boundary distance undefined, the lesion missed
    m = image_metrics(empty, lesion)
    assert m["dice"] == 0.0 and m["iou"] == 0.0 and math.isnan(m["hd95"])
    assert (m["true_lesions"], m["detected_lesions"], m["false_positive_lesions"]) == (1, 0, 0) and math.isnan(m["false_positive_scan"])
    # a prediction on a lesion-free scan: Dice undefined (not dropped silently: it is a false-positive scan)
    m = image_metrics(lesion, empty)
    assert math.isnan(m["dice"]) and m["false_positive_scan"] == 1.0 and m["false_positive_lesions"] == 1
    # both empty: a correct lesion-free scan
    m = image_metrics(empty, empty)
    assert math.isnan(m["dice"]) and m["false_positive_scan"] == 0.0 and m["false_positive_lesions"] == 0


def test_hd95_of_single_pixels_and_shifted_squares():
    a, b = _mask((10, 10), (2, 3, 2, 3)), _mask((10, 10), (2, 3, 5, 6))
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(a, b, spacing=(2.0, 0.5)) == pytest.approx(1.5)  # columns are 0.5 mm apart
    sq, shifted = _mask((20, 20), (5, 10, 5, 10)), _mask((20, 20), (5, 10, 7, 12))
    assert hd95(sq, shifted) == pytest.approx(2.0)


def test_lesion_detection_by_connected_components():
    truth = _mask((12, 12), (1, 3, 1, 3), (8, 10, 8, 10))  # two lesions
    pred = _mask((12, 12), (2, 4, 2, 4), (5, 6, 9, 11))  # touches the first, plus one elsewhere
    assert lesion_detection(pred, truth) == {"true_lesions": 2, "detected_lesions": 1, "false_positive_lesions": 1}
    diag = _mask((4, 4), (0, 1, 0, 1), (1, 2, 1, 2))  # diagonal neighbours: one 8-connected lesion
    assert lesion_detection(diag, diag)["true_lesions"] == 1


def test_ratio_bootstrap():
    num, den = np.array([1.0, 0.0, 1.0, 1.0]), np.array([1.0, 1.0, 1.0, 1.0])
    r = bootstrap_ratio_ci(num, den, ["a", "b", "c", "d"], n_boot=200)
    assert r["value"] == 0.75 and r["ci_low"] <= 0.75 <= r["ci_high"]
    assert math.isnan(bootstrap_ratio_ci(np.zeros(2), np.zeros(2), ["a", "b"])["value"])


def test_segmentation_task_reports_lesion_free_scans_beside_dice():
    task = get_task("segmentation")
    truth = np.stack([_mask((8, 8), (2, 4, 2, 4)), np.zeros((8, 8), bool), np.zeros((8, 8), bool)]).astype(np.uint8)
    p1 = np.stack([_mask((8, 8), (2, 4, 2, 4)), _mask((8, 8), (0, 1, 0, 1)), np.zeros((8, 8), bool)]).astype(np.float32) * 0.9 + 0.05
    probs = np.stack([1 - p1, p1], 1)
    cfg = type("E", (), {"n_bootstrap": 50, "ci_level": 0.95, "threshold": "youden", "fixed_threshold": 0.5})()
    thr = task.choose_thresholds(probs, truth, ["background", "lesion"], cfg)
    res = task.evaluate(probs, truth, ["a", "b", "c"], thr, ["background", "lesion"], cfg)
    les = res["per_class"]["lesion"]
    assert les["dice"]["value"] == 1.0 and les["images_with_lesion"] == 1 and les["lesion_free_images"] == 2
    assert les["false_positive_scan_rate"]["value"] == 0.5  # one of the two lesion-free scans has a false positive
    assert les["lesion_sensitivity"]["value"] == 1.0 and les["false_positive_lesions_per_image"]["value"] == pytest.approx(1 / 3)
    assert les["global_dice"]["value"] == pytest.approx(2 * 4 / (2 * 4 + 1))
