import os

import numpy as np
import pytest

from scintix.simulate import simulate_bone_scan
from scintix.transforms.regions import (
    RegionError,
    ThoraxCrop,
    box_iou,
    crop_box,
    crop_thorax,
    find_regions,
    looks_whole_body,
    region_crop_box,
)


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (0, 5, 10, 15)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 1, 1), (5, 5, 6, 6)) == 0.0


def test_thorax_box_iou_target_on_simulated_scans():
    # seeds unseen by the fitting of the region fractions (fitted on [99, 1000..1099])
    ious, regions_ok = [], 0
    for seed in range(20):
        scan = simulate_bone_scan(np.random.default_rng([7, seed]), [set(), {"metastasis"}, {"arthritis"}][seed % 3])
        for view in ("ant", "post"):
            found = find_regions(scan.views[view])
            ious.append(box_iou(found.boxes["thorax"], scan.boxes[view]["thorax"]))
            regions_ok += all(box_iou(found.boxes[r], scan.boxes[view][r]) > 0.5 for r in ("head", "abdomen_pelvis", "legs"))
    ious = np.array(ious)
    assert (ious >= 0.9).mean() >= 0.95, np.sort(ious)[:5]
    assert regions_ok >= 0.9 * len(ious)


def test_robust_to_hot_bladder_and_arm_pose():
    # hottest bladders and every arm pose among the first seeds that have them
    seen = set()
    for seed in range(60):
        scan = simulate_bone_scan(np.random.default_rng([8, seed]), set())
        key = (scan.params["arm_pose"], scan.params["bladder_uptake"] > 3)
        if key in seen:
            continue
        seen.add(key)
        iou = box_iou(find_regions(scan.views["ant"]).boxes["thorax"], scan.boxes["ant"]["thorax"])
        assert iou >= 0.85, (key, iou)
    assert {"sides", "abducted", "abdomen"} <= {k[0] for k in seen} and any(k[1] for k in seen)


def test_crop_transform_and_margin():
    scan = simulate_bone_scan(np.random.default_rng(1), set())
    img = scan.views["ant"]
    crop, box = crop_thorax(img, margin=0.1)
    y0, x0, y1, x1 = box
    assert crop.shape == (y1 - y0, x1 - x0)
    inner = find_regions(img).boxes["thorax"]
    assert y0 < inner[0] and y1 > inner[2] and x0 < inner[1] and x1 > inner[3]
    stacked = ThoraxCrop(margin=0.1)(np.stack([img, img * 2]))
    assert stacked.shape == (2, *crop.shape) and np.array_equal(stacked[1], crop * 2)
    half, hbox = crop_thorax(img, side="image_left")
    assert hbox[1] == box[1] - (box[1] - crop_box(inner, 0.05, img.shape)[1]) and half.shape[1] < crop.shape[1]
    assert crop_box((0, 0, 10, 10), 0.5, (12, 12)) == (0, 0, 12, 12)


def test_not_a_whole_body_scan_is_a_clear_error():
    with pytest.raises(RegionError, match="not a whole-body scan"):
        find_regions(np.ones((100, 100)))
    with pytest.raises(RegionError, match="no body outline|not a whole-body"):
        find_regions(np.zeros((1024, 256)))


def test_real_ge_whole_body_scan_regions():
    pydicom = pytest.importorskip("pydicom")
    pytest.importorskip("libjpeg")
    from scintix.data.dicom import read_nm

    path = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "JPGExtended.dcm")
    if not os.path.exists(path):
        pytest.skip("pydicom test file not shipped")
    r = find_regions(read_nm(path).views["ant"])
    # hand-read from the image: skull ~rows 89-177, sternal notch ~215, last ribs ~340-355, feet ~853
    assert abs(r.landmarks["vertex"] - 89) <= 4 and abs(r.landmarks["feet"] - 853) <= 4
    y0, x0, y1, x1 = r.boxes["thorax"]
    assert 195 <= y0 <= 220 and 330 <= y1 <= 370
    assert 55 <= x0 <= 85 and 190 <= x1 <= 220  # rib cage, not the arms


def test_chest_regions_are_the_patients_side_of_each_view():
    scan = simulate_bone_scan(np.random.default_rng(3), set())
    for view in ("ant", "post"):
        img = scan.views[view]
        r = find_regions(img)
        mid = int(round(r.landmarks["midline"]))
        full = region_crop_box(r, img.shape, "thorax", view)
        right, left = region_crop_box(r, img.shape, "chest_right", view), region_crop_box(r, img.shape, "chest_left", view)
        assert right[0] == left[0] == full[0] and right[2] == left[2] == full[2]
        if view == "ant":  # the patient faces the camera: their right is on the image's left
            assert (right[1], right[3]) == (full[1], mid + 1) and (left[1], left[3]) == (mid, full[3])
        else:
            assert (right[1], right[3]) == (mid, full[3]) and (left[1], left[3]) == (full[1], mid + 1)
    with pytest.raises(RegionError, match="view is not known"):
        region_crop_box(r, img.shape, "chest_right", None)
    assert region_crop_box(r, img.shape, "thorax", None) == full  # both halves need no view
    assert looks_whole_body((1024, 256)) and looks_whole_body((512, 128))
    assert not looks_whole_body((224, 95)) and not looks_whole_body((171, 68)) and not looks_whole_body((600, 600))  # BS-80K crops are <= 224 rows


def test_region_reader_crops_whole_body_views_and_passes_crops_through(tmp_path):
    from scintix.data.crop import RegionReader
    from scintix.data.io import ImageReadError

    img = simulate_bone_scan(np.random.default_rng(4), set()).views["ant"]
    wb, crop = tmp_path / "wb.npy", tmp_path / "crop.npy"
    np.save(wb, img)
    np.save(crop, img[200:371, 60:128])
    rr = RegionReader("chest_right", {str(wb): "ant"})
    arr, _ = rr(str(wb))
    y0, x0, y1, x1 = rr.found[str(wb)]["box"]
    assert np.array_equal(arr[0], img[y0:y1, x0:x1]) and x1 < img.shape[1] * 0.75  # the image-left half of the thorax
    arr2, _ = rr(str(crop))
    assert arr2.shape == (1, 171, 68) and str(crop) not in rr.found  # a crop already: as read
    with pytest.raises(ImageReadError, match="wb.npy: .*view is not known"):
        RegionReader("chest_right")(str(wb))
    plain = RegionReader(None)
    arr3, _ = plain(str(wb))
    assert arr3.shape == (1, *img.shape) and plain.found[str(wb)]["box"] is None and "thorax" in plain.found[str(wb)]["regions"]
    with pytest.raises(ImageReadError, match="whole-body scan .*crop it first"):
        RegionReader("thorax")(str(_save(tmp_path / "flat.npy", np.zeros((1024, 256)))))


def _save(path, arr):
    np.save(path, arr)
    return path
