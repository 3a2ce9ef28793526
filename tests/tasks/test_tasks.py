import numpy as np
import pytest
import torch

from scintix.config import load_config
from scintix.tasks import TASK_NAMES, get_task


def test_unknown_task_is_refused_when_the_config_loads_listing_the_valid_ones():
    with pytest.raises(ValueError, match="binary, multiclass, multilabel, segmentation"):
        load_config("quickstart", ["data.task=segmentaton"])
    with pytest.raises(ValueError, match="unknown task"):
        get_task("regression")
    assert set(TASK_NAMES) == {"binary", "multiclass", "multilabel", "segmentation"}


def test_each_task_decides_and_encodes_its_own_way():
    b, mc, ml, seg = (get_task(n) for n in TASK_NAMES)
    classes = ["normal", "abnormal"]
    assert b.columns(2) == [1] and mc.columns(3) == [0, 1, 2] and seg.columns(3) == [1, 2]
    assert b.decide(np.array([0.7, 0.3]), {"abnormal": 0.25}, classes) == "abnormal"  # threshold, not arg-max
    assert mc.decide(np.array([0.2, 0.5, 0.3]), {}, ["a", "b", "c"]) == "b"
    assert ml.decide(np.array([0.9, 0.1, 0.6]), {"a": 0.5, "b": 0.5, "c": 0.5}, ["a", "b", "c"]) == "a;c"
    assert b.group_stratum(np.array([0, 1, 0])) == "1" and mc.group_stratum(np.array([2, 2, 0])) == "2"
    assert ml.group_stratum(np.array([[1, 0, 0], [0, 0, 1]])) == "101"
    logits = torch.tensor([[0.0, 2.0, -1.0]])
    assert torch.allclose(ml.activation(logits), torch.sigmoid(logits)) and torch.allclose(mc.activation(logits), torch.softmax(logits, 1))
    assert ml.encode_target(torch.tensor([[1, 0, 1]])).dtype == torch.float32 and b.encode_target(torch.tensor([1])).dtype == torch.int64
    # binary CAMs explain the log-odds of the target class
    two = torch.tensor([[0.5, 2.0]])
    assert b.cam_score(two, torch.tensor([1])).item() == pytest.approx(1.5) and b.cam_score(two, torch.tensor([0])).item() == pytest.approx(-1.5)


def test_segmentation_threshold_is_chosen_on_pooled_dice():
    seg = get_task("segmentation")
    truth = np.zeros((2, 8, 8), np.uint8)
    truth[0, 2:5, 2:5] = 1
    p1 = np.full((2, 8, 8), 0.1, np.float32)
    p1[0, 2:5, 2:5] = 0.6  # lesion pixels at 0.6 ...
    p1[1, 0:2, 0:2] = 0.42  # ... a lesion-free scan with a 0.42 blob: a threshold above it keeps it out, 0.4 would not
    probs = np.stack([1 - p1, p1], 1)
    cfg = type("E", (), {"threshold": "youden", "fixed_threshold": 0.5})()
    thr = seg.choose_thresholds(probs, truth, ["background", "lesion"], cfg)["lesion"]
    assert 0.42 < thr <= 0.6
    assert seg.masks(probs, {"lesion": thr}, ["background", "lesion"]).sum() == 9
