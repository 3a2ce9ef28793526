"""DICOM outputs: SEG frames aligned with the source (read back), SC banner, SR content, references, de-identification, predict --dicom-out."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

pydicom = pytest.importorskip("pydicom")
hd = pytest.importorskip("highdicom")

from scintix.data.dicom_write import write_ct, write_nm  # noqa: E402
from scintix.inference.dicom_out import (  # noqa: E402
    BANNER,
    Algorithm,
    mask_to_source,
    write_finding_sr,
    write_lesion_seg,
    write_overlay_sc,
)
from scintix.transforms.functional import resize_pad_mask  # noqa: E402

ALG = Algorithm("unet", "run-1", synthetic=True)


def _ct(tmp_path, name="Doe^Jane"):
    path = write_ct(tmp_path / "ct.dcm", np.random.default_rng(0).normal(40, 10, (64, 48)), patient_id="PID-77")
    ds = pydicom.dcmread(path)
    ds.PatientName, ds.PatientBirthDate = name, "19500101"
    return ds


def test_seg_frames_align_with_the_source_after_model_resizing(tmp_path):
    ct = _ct(tmp_path)
    truth = np.zeros((64, 48), np.uint8)
    truth[10:20, 4:30] = 1  # off-centre and asymmetric: a flip or a shift would show
    truth[40:42, 40:44] = 1
    at_model_size = resize_pad_mask(truth, (32, 32))[0]  # what the model sees and predicts: 32x24 + padding
    back = mask_to_source(at_model_size, ct)
    np.testing.assert_array_equal(back, truth)
    path = write_lesion_seg(ct, back, tmp_path / "seg.dcm", ALG)
    seg = hd.seg.segread(path)
    read = seg.get_pixels_by_source_instance(source_sop_instance_uids=[ct.SOPInstanceUID], segment_numbers=[1])
    np.testing.assert_array_equal(read[0, :, :, 0], truth)
    raw = pydicom.dcmread(path)
    assert raw.StudyInstanceUID == ct.StudyInstanceUID and raw.SeriesInstanceUID != ct.SeriesInstanceUID and raw.SOPInstanceUID != ct.SOPInstanceUID
    assert raw.FrameOfReferenceUID == ct.FrameOfReferenceUID
    assert raw.ReferencedSeriesSequence[0].SeriesInstanceUID == ct.SeriesInstanceUID
    assert raw.PatientName == "Doe^Jane" and raw.PatientID == "PID-77"
    assert "NOT FOR DIAGNOSTIC USE" in raw.SeriesDescription


def test_seg_on_the_real_nm_whole_body_scan_and_refusals(tmp_path):
    path = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "JPEG2000.dcm")
    if not os.path.exists(path):
        pytest.skip("pydicom's NM whole-body test file not shipped")
    nm = pydicom.dcmread(path, stop_before_pixels=True)
    mask = np.zeros((1024, 256), np.uint8)
    mask[300:340, 60:90] = 1  # a 'lesion' in the left half, upper third
    out = write_lesion_seg(nm, mask, tmp_path / "nm_seg.dcm", ALG)
    seg = pydicom.dcmread(out)
    np.testing.assert_array_equal(seg.pixel_array.reshape(1024, 256), mask)  # one frame, not flipped, not shifted
    src = seg.PerFrameFunctionalGroupsSequence[0].DerivationImageSequence[0].SourceImageSequence[0]
    assert src.ReferencedSOPInstanceUID == nm.SOPInstanceUID
    with pytest.raises(ValueError, match="the mask is 10x10, the source 1024x256"):
        write_lesion_seg(nm, np.zeros((10, 10)), tmp_path / "x.dcm", ALG)
    two = pydicom.dcmread(write_nm(tmp_path / "two.dcm", {"ant": np.ones((32, 16)), "post": np.ones((32, 16))}))
    with pytest.raises(ValueError, match="2 frames and no frame of reference"):
        write_lesion_seg(two, np.zeros((32, 16)), tmp_path / "y.dcm", ALG)


def test_secondary_capture_banner_and_deidentification(tmp_path):
    ct = _ct(tmp_path)
    rgb = np.full((64, 48, 3), 30, np.uint8)
    plain = pydicom.dcmread(write_overlay_sc(ct, rgb, tmp_path / "sc.dcm", ALG))
    assert plain.BurnedInAnnotation == "YES" and BANNER in plain.ImageComments and "SYNTHETIC" in plain.ImageComments
    px = plain.pixel_array
    assert px.shape == (64, 48, 3) and tuple(px[1, 1]) == (200, 0, 0) and tuple(px[-1, -1]) == (30, 30, 30)  # banner on top, image below
    assert plain.PatientName == "Doe^Jane" and plain.StudyInstanceUID == ct.StudyInstanceUID and plain.SourceImageSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    assert list(plain.PatientOrientation) == ["L", "P"]  # read off the CT's ImageOrientationPatient
    anon = pydicom.dcmread(write_overlay_sc(ct, rgb, tmp_path / "sc_anon.dcm", ALG, deidentify=True))
    assert str(anon.PatientName) == "ANONYMOUS^" and anon.PatientID == "ANONYMOUS" and not anon.PatientBirthDate and anon.PatientIdentityRemoved == "YES"
    assert "Doe" not in str(anon) and "PID-77" not in str(anon) and "19500101" not in str(anon)
    assert anon.StudyInstanceUID == ct.StudyInstanceUID  # still filed with the source study
    assert ct.PatientName == "Doe^Jane"  # the source itself untouched


def test_finding_sr_content(tmp_path):
    ct = _ct(tmp_path)
    sr = pydicom.dcmread(write_finding_sr(ct, {"label": "abnormal", "probability": 0.83, "threshold": 0.41, "positive_class": "abnormal"}, tmp_path / "sr.dcm", ALG, deidentify=True))
    items = {i.ConceptNameCodeSequence[0].CodeMeaning: i for i in sr.ContentSequence}
    assert items["Finding"].TextValue == "abnormal"
    assert float(items["Probability of abnormal"].MeasuredValueSequence[0].NumericValue) == pytest.approx(0.83)
    assert float(items["Decision threshold (validation)"].MeasuredValueSequence[0].NumericValue) == pytest.approx(0.41)
    assert "unet" in items["Algorithm Name"].TextValue and "SYNTHETIC" in items["Comment"].TextValue
    assert items["Source of Measurement"].ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ct.SOPInstanceUID
    assert sr.CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID == ct.StudyInstanceUID
    assert str(sr.PatientName) == "ANONYMOUS^" and "Doe" not in str(sr)
    with pytest.raises(ValueError, match="not a finite number"):
        write_finding_sr(ct, {"label": "abnormal", "probability": float("nan"), "threshold": 0.4, "positive_class": "abnormal"}, tmp_path / "nan.dcm", ALG)
    assert not (tmp_path / "nan.dcm").exists()


def test_predict_writes_dicom_outputs_for_dicom_inputs_only(run_copy, tmp_path, capsys):
    from scintix.cli.__main__ import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(3)
    write_nm(inputs / "scan.dcm", {"ant": rng.random((48, 32)) * 100}, patient_id="PID-5")
    from PIL import Image

    Image.fromarray((rng.random((24, 16)) * 255).astype(np.uint8)).save(inputs / "plain.png")
    out = tmp_path / "pred.csv"
    assert main(["predict", str(run_copy), str(inputs), "--out", str(out), "--dicom-out", str(tmp_path / "dcm"), "--deidentify"]) == 0
    import csv

    rows = {os.path.basename(r["path"]): r for r in csv.DictReader(open(out))}
    sr_path = rows["scan.dcm"]["dicom_files"]
    assert sr_path.endswith("_sr.dcm") and os.path.exists(sr_path)
    sr = pydicom.dcmread(sr_path)
    finding = next(i for i in sr.ContentSequence if i.ConceptNameCodeSequence[0].CodeMeaning == "Finding")
    assert finding.TextValue == rows["scan.dcm"]["predicted"] and sr.PatientID == "ANONYMOUS"
    assert rows["plain.png"]["dicom_files"] == "" and "not a DICOM file" in rows["plain.png"]["warning"] and rows["plain.png"]["predicted"]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (Debian: apt-get install dicom3tools)")
def test_outputs_and_sources_pass_dciodvfy(tmp_path):
    """David Clunie's validator finds no error in what we write: the three outputs, and the simulator's CT and NM files."""
    ct = _ct(tmp_path)
    nm = write_nm(tmp_path / "nm.dcm", {"ant": np.ones((64, 16)), "post": np.ones((64, 16))}, patient_id="P")
    mask = np.zeros((64, 48), np.uint8)
    mask[10:20, 5:30] = 1
    files = [tmp_path / "ct.dcm", nm,
             write_lesion_seg(ct, mask, tmp_path / "seg.dcm", ALG, deidentify=True),
             write_overlay_sc(ct, np.zeros((64, 48, 3), np.uint8), tmp_path / "sc.dcm", ALG),
             write_finding_sr(ct, {"label": "abnormal", "probability": 0.8, "threshold": 0.5, "positive_class": "abnormal"}, tmp_path / "sr.dcm", ALG)]
    for f in files:
        out = subprocess.run(["dciodvfy", str(f)], capture_output=True, text=True, timeout=60)
        errors = [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("Error")]
        assert not errors, f"{f.name}: {errors}"
