"""Writing DICOM: planar NM scans (named views as frames) and CT slices in HU, uncompressed.

What scintix writes reads back with :mod:`.dicom` (view codes, frame labels,
modality LUT); the simulator uses it to make DICOM test data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["write_nm", "write_ct", "NM_IMAGE_STORAGE", "CT_IMAGE_STORAGE"]

NM_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.20"


def _new_dataset(sop_class: str, modality: str, patient_id: str, series_uid: str | None = None, study_uid: str | None = None):
    """A fresh uncompressed (explicit VR little endian) dataset with new study/series/instance UIDs."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientID, ds.PatientName = patient_id, patient_id
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid or generate_uid(), series_uid or generate_uid()
    ds.Manufacturer = "scintix simulator"
    ds.SeriesNumber, ds.InstanceNumber = 1, 1
    for keyword in TYPE2_EMPTY:  # type 2: present, empty when unknown (what dciodvfy checks)
        setattr(ds, keyword, "")
    return ds


TYPE2_EMPTY = ("PatientBirthDate", "PatientSex", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID", "AccessionNumber", "Laterality")


def write_nm(
    file: str | Path,
    views: dict[str, np.ndarray],
    spacing: tuple[float, float] = (2.26, 2.26),
    patient_id: str = "ANON",
    description: str = "Whole Body Bone",
    comments: str = "",
) -> Path:
    """Write named planar views as one multi-frame NM DICOM file (uint16 counts).

    Each view becomes a frame with its own detector whose ViewCodeSequence
    names the view (``ant`` -> "anterior", ``post`` -> "posterior"), so
    :func:`read_nm` gets the names back from the header. Counts must fit in
    uint16; larger values are an error rather than silently clipped.
    """
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence as Seq

    names = list(views)
    frames = np.stack([np.asarray(views[v]) for v in names])
    if frames.min() < 0 or frames.max() > 65535:
        raise ValueError(f"{file}: counts must lie in 0..65535 to be stored as uint16 (got {frames.min()}..{frames.max()})")
    frames = np.rint(frames).astype(np.uint16)
    ds = _new_dataset(NM_IMAGE_STORAGE, "NM", patient_id)
    ds.SeriesDescription = description
    ds.ImageComments = comments
    ds.ImageType = ["ORIGINAL", "PRIMARY", "WHOLE BODY", "EMISSION"]
    ds.NumberOfFrames = len(names)
    ds.FrameIncrementPointer = [0x00540010, 0x00540020]  # WHOLE BODY: frames indexed by energy window and detector
    ds.NumberOfEnergyWindows = 1
    ds.EnergyWindowVector = [1] * len(names)
    ds.DetectorVector = list(range(1, len(names) + 1))
    ds.NumberOfDetectors = len(names)
    ds.EnergyWindowInformationSequence = Seq([Dataset()])
    ds.RadiopharmaceuticalInformationSequence = Seq([])
    ds.PatientOrientationCodeSequence = Seq([])
    ds.PatientGantryRelationshipCodeSequence = Seq([])
    ds.CountsAccumulated = ""
    ds.ActualFrameDuration = 0  # unknown (simulated); type 1C for whole-body images
    ds.ScanVelocity, ds.ScanLength = "", ""
    items = []
    for v in names:
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = v.upper()[:16], "99SCINTIX"
        code.CodeMeaning = {"ant": "anterior", "post": "posterior"}.get(v.split("_")[0], v)
        item = Dataset()
        item.ViewCodeSequence = Seq([code])
        item.CollimatorType = ""
        item.ImageOrientationPatient, item.ImagePositionPatient = "", ""
        items.append(item)
    ds.DetectorInformationSequence = Seq(items)
    ds.Rows, ds.Columns = int(frames.shape[1]), int(frames.shape[2])
    ds.PixelSpacing = [f"{spacing[0]:.4f}", f"{spacing[1]:.4f}"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = frames.tobytes()
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(file), enforce_file_format=True)
    return file


CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def write_ct(file: str | Path, hu: np.ndarray, spacing: tuple[float, float] = (0.9, 0.9), patient_id: str = "ANON", z: float = 0.0, instance: int = 1, comments: str = "",
             series_uid: str | None = None, study_uid: str | None = None, frame_of_reference_uid: str | None = None, slice_thickness: float = 5.0) -> Path:
    """Write one CT slice in HU as DICOM (int16 stored values, RescaleIntercept -1024, slope 1).

    Slices of one series share ``series_uid``, ``study_uid`` and ``frame_of_reference_uid``
    (new ones when None); position, orientation, spacing and thickness make the
    slice's place in patient space (what a DICOM SEG over it aligns to).
    """
    from pydicom.uid import generate_uid

    stored = np.rint(np.asarray(hu, dtype=np.float64) + 1024.0)
    if stored.min() < -32768 or stored.max() > 32767:
        raise ValueError(f"{file}: HU values out of the int16 range")
    ds = _new_dataset(CT_IMAGE_STORAGE, "CT", patient_id, series_uid, study_uid)
    ds.ImageComments = comments
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.InstanceNumber = instance
    ds.PatientPosition = "HFS"
    ds.KVP, ds.AcquisitionNumber = "", ""
    ds.ImagePositionPatient = [0.0, 0.0, float(z)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.FrameOfReferenceUID = frame_of_reference_uid or generate_uid()
    ds.PositionReferenceIndicator = ""
    ds.SliceThickness = f"{slice_thickness:.2f}"
    ds.SliceLocation = f"{float(z):.2f}"
    ds.Rows, ds.Columns = int(stored.shape[0]), int(stored.shape[1])
    ds.PixelSpacing = [f"{spacing[0]:.4f}", f"{spacing[1]:.4f}"]
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = "-1024", "1", "HU"
    ds.WindowCenter, ds.WindowWidth = "40", "80"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = stored.astype(np.int16).tobytes()
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(file), enforce_file_format=True)
    return file
