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


# ---------------------------------------------------------------- NM views, CT windows, folders

from scintix.data import dicom as dcm  # noqa: E402
from scintix.data.dicom_write import write_ct, write_nm  # noqa: E402
from scintix.data.manifest import manifest_from_dicom, read_manifest, write_manifest  # noqa: E402


def test_real_ge_whole_body_scan_is_one_anterior_view():
    pytest.importorskip("libjpeg")
    scan = dcm.read_nm(_testfile("JPGExtended.dcm"))
    assert list(scan.views) == ["ant"] and "detector 1" in scan.how["ant"]
    ant = scan.views["ant"]
    assert ant.shape == (1024, 256) and ant.dtype == np.float32
    # head at the top (HFS): the body's upper quarter (skull, shoulders) far outweighs its lower quarter (legs, feet)
    rows = (ant - np.median(ant)).clip(0).sum(axis=1)
    body = np.flatnonzero(rows > 0.02 * rows.max())
    top, bottom = body[0], body[-1]
    quarter = (bottom - top) // 4
    assert top < 150 and bottom > 700
    assert rows[top : top + quarter].sum() > 2 * rows[bottom - quarter : bottom].sum()
    assert scan.meta["counts_accumulated"] == 3596452.0


def test_multiframe_nm_views_from_view_codes(tmp_path):
    ant, post = np.full((8, 4), 3.0), np.full((8, 4), 7.0)
    ant[0, 0] = post[0, 3] = 50
    write_nm(tmp_path / "wb.dcm", {"post": post, "ant": ant}, patient_id="P9")
    scan = dcm.read_nm(tmp_path / "wb.dcm")
    assert set(scan.views) == {"ant", "post"} and scan.how["post"] == "view code of detector 1"
    np.testing.assert_array_equal(scan.views["post"], post)
    mirrored = dcm.read_nm(tmp_path / "wb.dcm", mirror_posterior=True)
    assert mirrored.views["post"][0, 0] == 50 and mirrored.views["ant"][0, 0] == 50
    arr, meta = read_image(f"{tmp_path / 'wb.dcm'}#ant")
    assert arr.shape == (1, 8, 4) and meta["view"] == "ant"
    with pytest.raises(ImageReadError, match="no view 'lat'"):
        read_image(f"{tmp_path / 'wb.dcm'}#lat")


def test_views_from_frame_labels_and_detector_convention():
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.NumberOfFrames = 3
    ds.FrameLabelVector = ["WB POST", "WB ANT", "SPOT"]
    ds.DetectorVector = [1, 2, 1]
    views = dcm.identify_views(ds)
    assert [v for v, _ in views] == ["post", "ant", "ant_2"]  # frame 3: no label -> detector 1 convention
    assert "frame label" in views[0][1] and "convention" in views[2][1]
    bare = Dataset()
    bare.NumberOfFrames = 1
    assert dcm.identify_views(bare) == [("frame0", "no view information in the header")]


def test_ct_windows_against_hand_computed_values():
    hu = np.array([[-1000.0, 0.0, 40.0], [80.0, 1000.0, 2000.0]])
    brain = dcm.apply_window(hu, "brain")  # 40 +- 40 HU
    np.testing.assert_allclose(brain, [[0, 0, 0.5], [1, 1, 1]])
    np.testing.assert_allclose(dcm.apply_window(hu, "subdural"), [[0, 0.1, 0.3], [0.5, 1, 1]])  # 80 +- 100
    np.testing.assert_allclose(dcm.apply_window(hu, "bone"), [[0, 0.5 - 600 / 2800, 0.5 - 560 / 2800], [0.5 - 520 / 2800, 0.5 + 400 / 2800, 0.5 + 1400 / 2800]], rtol=1e-6)
    stack = dcm.window_stack(hu, ["brain", "subdural", "bone"])
    assert stack.shape == (3, 2, 3) and stack.dtype == np.float32
    with pytest.raises(ValueError, match="unknown window"):
        dcm.apply_window(hu, "liver")


def test_ct_series_folder_sorted_by_position(tmp_path):
    src = pydicom.dcmread(_testfile("CT_small.dcm"))
    base = src.pixel_array.copy()
    for i, z in enumerate([30.0, 10.0, 20.0]):
        src.ImagePositionPatient = [0.0, 0.0, z]
        src.InstanceNumber = i + 1
        src.PixelData = (base + int(z)).astype(base.dtype).tobytes()
        src.SOPInstanceUID = pydicom.uid.generate_uid()
        src.save_as(tmp_path / f"slice{i}.dcm")
    (tmp_path / "notes.txt").write_text("not dicom")
    vol, meta = dcm.read_ct_series(tmp_path)
    assert vol.shape == (3, 128, 128) and meta["slices"] == 3
    assert vol[1].mean() - vol[0].mean() == pytest.approx(10.0) and vol[2].mean() - vol[1].mean() == pytest.approx(10.0)


def test_dicom_folder_manifest_feeds_two_view_samples(tmp_path):
    for pid in ("A", "B"):
        write_nm(tmp_path / pid / "wb.dcm", {"ant": np.ones((6, 3)), "post": np.ones((6, 3)) * 2}, patient_id=pid)
    (tmp_path / "broken.dcm").write_bytes(b"nonsense")
    records, errors = manifest_from_dicom(tmp_path)
    assert len(errors) == 1 and "broken.dcm" in errors[0]
    assert sorted((r.patient_id, r.view) for r in records) == [("A", "ant"), ("A", "post"), ("B", "ant"), ("B", "post")]
    csv = write_manifest([dataclasses_replace(r, label="0") for r in records], tmp_path / "m.csv", relative_to=tmp_path)
    back = read_manifest(csv)
    arr, _ = read_image(next(r.path for r in back if r.view == "post"))
    assert arr.mean() == 2.0


def dataclasses_replace(record, **kw):
    import dataclasses

    return dataclasses.replace(record, **kw)


def test_folder_read_as_studies(tmp_path):
    write_nm(tmp_path / "nm" / "wb.dcm", {"ant": np.full((8, 4), 2.0), "post": np.full((8, 4), 3.0)}, patient_id="P1")
    series, study = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    for i, z in enumerate([5.0, 0.0]):
        write_ct(tmp_path / "ct" / f"s{i}.dcm", np.full((6, 6), 40.0 + z), patient_id="P2", z=z, instance=i + 1, series_uid=series, study_uid=study)
    (tmp_path / "bad.dcm").write_bytes(b"xx")
    studies, errors = dcm.read_studies(tmp_path)
    assert len(errors) == 1 and "bad.dcm" in errors[0]
    nm = next(s for s in studies if s.nm)
    assert nm.patient_id == "P1" and set(nm.nm[0].views) == {"ant", "post"}
    ct = [s for s in studies if s.ct]
    assert len(studies) == 2 and len(ct) == 1 and ct[0].patient_id == "P2"
    vol, meta = ct[0].ct[series]
    assert vol.shape == (2, 6, 6) and meta["slices"] == 2
    assert [float(v.mean()) for v in vol] == [40.0, 45.0]  # ordered by z; HU survive the int16 + intercept round trip
