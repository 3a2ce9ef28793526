import numpy as np
import pytest
from PIL import Image

from scintix.data.io import ImageReadError
from scintix.data.masks import read_mask
from scintix.transforms.functional import resize_pad_mask


def test_png_and_npy_masks_binary_and_value_coded(tmp_path):
    m = np.zeros((10, 8), np.uint8)
    m[2:4, 2:4] = 255  # a 0/255 PNG
    Image.fromarray(m).save(tmp_path / "m.png")
    assert read_mask(tmp_path / "m.png").tolist() == (m > 0).astype(np.uint8).tolist()
    coded = np.zeros((10, 8), np.int64)
    coded[1, 1], coded[5:7, 5] = 3, 7  # the simulator's finding ids
    np.save(tmp_path / "c.npy", coded)
    assert read_mask(tmp_path / "c.npy", "binary").sum() == 3
    with pytest.raises(ImageReadError, match="c.npy.*mask value 7"):
        read_mask(tmp_path / "c.npy", "values", n_classes=3)
    assert set(np.unique(read_mask(tmp_path / "c.npy", "values", n_classes=8))) == {0, 3, 7}


def test_mask_resize_is_nearest_and_pads_background():
    m = np.zeros((1, 20, 10), np.uint8)
    m[0, 5:10, 2:6] = 2
    r = resize_pad_mask(m, (10, 10))
    assert r.shape == (1, 10, 10) and set(np.unique(r)) == {0, 2}  # no blended labels
    assert r[0, :, :2].sum() == 0 and r[0, :, -2:].sum() == 0  # aspect kept, padded with background


def test_dicom_seg_mask(tmp_path):
    hd = pytest.importorskip("highdicom")
    import pydicom
    from pydicom.sr.codedict import codes

    from scintix.data.dicom_write import write_ct

    write_ct(tmp_path / "ct.dcm", np.zeros((32, 24)) + 40, patient_id="P1")
    src = pydicom.dcmread(tmp_path / "ct.dcm")
    for k in ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName", "AccessionNumber", "StudyID"):
        setattr(src, k, getattr(src, k, ""))
    src.FrameOfReferenceUID, src.SliceThickness = hd.UID(), 1.0  # what the SEG IOD needs from its source
    truth = np.zeros((32, 24), bool)
    truth[5:12, 4:9] = True
    desc = hd.seg.SegmentDescription(segment_number=1, segment_label="lesion", segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                                     segmented_property_type=codes.SCT.Neoplasm, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL)
    seg = hd.seg.Segmentation(source_images=[src], pixel_array=truth, segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[desc],
                              series_instance_uid=hd.UID(), series_number=2, sop_instance_uid=hd.UID(), instance_number=1, manufacturer="test",
                              manufacturer_model_name="test", software_versions="0", device_serial_number="0")
    seg.save_as(tmp_path / "seg.dcm")
    assert np.array_equal(read_mask(tmp_path / "seg.dcm"), truth.astype(np.uint8))
    (tmp_path / "bad.dcm").write_bytes(b"not dicom")
    with pytest.raises(ImageReadError, match="bad.dcm"):
        read_mask(tmp_path / "bad.dcm")


def test_simulator_class_masks_feed_a_per_class_segmentation(tmp_path):
    import csv

    from scintix.cli.__main__ import main
    from scintix.config import load_config
    from scintix.data.prepare import prepare_data

    sim = tmp_path / "sim"
    assert main(["simulate", str(sim), "--n", "6", "--seed", "2", "--prevalence", "metastasis=0.8", "arthritis=0.8"]) == 0
    rows = list(csv.DictReader(open(sim / "manifest.csv")))
    seen = set()
    for r in rows:
        ids = read_mask(sim / r["mask"], "values", n_classes=256)
        cls = read_mask(sim / r["mask_class"], "values", n_classes=3)  # 0 background, 1 metastasis, 2 arthritis
        assert np.array_equal(cls > 0, ids > 0)  # the same pixels, coded by class instead of finding id
        seen |= set(np.unique(cls).tolist())
    assert seen == {0, 1, 2}
    cfg = load_config("p4-unet", [f"data.source={sim}", "data.mask_column=mask_class", "data.mask_mode=values", "data.classes=[background,metastasis,arthritis]"])
    data = prepare_data(cfg, tmp_path / "run")
    assert data.classes == ["background", "metastasis", "arthritis"] and all(s.mask and "masks_class" in s.mask for ss in data.samples.values() for s in ss)


def test_a_label_map_resize_refuses_values_it_would_wrap():
    assert resize_pad_mask(np.full((4, 4), 255, np.uint8), (2, 2)).max() == 255
    with pytest.raises(ValueError, match="0..255"):
        resize_pad_mask(np.full((4, 4), 400, np.uint16), (2, 2))
