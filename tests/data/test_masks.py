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

    from scintix.data.dicom import write_ct

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
