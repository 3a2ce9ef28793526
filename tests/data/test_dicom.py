import os

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")

from scintix.data.io import ImageReadError, read_image  # noqa: E402


def _testfile(name):
    path = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", name)
    if not os.path.exists(path):
        pytest.skip(f"pydicom test file {name} not shipped")
    return path


def test_ct_rescaled_to_hounsfield():
    path = _testfile("CT_small.dcm")
    ds = pydicom.dcmread(path)
    arr, meta = read_image(path)
    expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    np.testing.assert_allclose(arr[0], expected)
    assert meta["modality"] == "CT" and meta["spacing"] == tuple(float(s) for s in ds.PixelSpacing)


def test_real_nm_whole_body_bone_scan_jpeg2000():
    pytest.importorskip("openjpeg")
    arr, meta = read_image(_testfile("JPEG2000.dcm"))
    assert arr.shape == (1, 1024, 256)  # GE whole-body: long axis head-to-foot is the rows
    assert meta["modality"] == "NM" and meta["spacing"] == (2.26, 2.26)
    assert arr.max() > 100 and np.isfinite(arr).all()


def test_undecodable_dicom_is_a_clear_error():
    path = _testfile("JPEG-lossy.dcm")  # pydicom's known-bad 12-bit lossy JPEG
    with pytest.raises(ImageReadError, match="cannot decode pixel data") as err:
        read_image(path)
    assert "JPEG-lossy.dcm" in str(err.value)


def test_truncated_dicom(tmp_path):
    data = open(_testfile("CT_small.dcm"), "rb").read()
    (tmp_path / "cut.dcm").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match="cut.dcm"):
        read_image(tmp_path / "cut.dcm")
