"""DICOM reading through pydicom: stored values rescaled to real values (counts, HU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .io import ImageReadError

__all__ = ["read_dicom"]


def read_dicom(file: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a DICOM image as ``(frames, H, W)`` real values plus metadata.

    Modality LUT (RescaleSlope/Intercept) is applied, so CT comes out in HU and
    NM in counts. Compressed transfer syntaxes need the ``dicom`` extra
    (pylibjpeg); a missing decoder is reported as such.

    Raises:
        ImageReadError: not DICOM, no pixel data, or pixel data that cannot be decoded.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    try:
        ds = pydicom.dcmread(str(file))
    except InvalidDicomError:
        raise ImageReadError(file, "not a DICOM file") from None
    if "PixelData" not in ds:
        raise ImageReadError(file, "DICOM file has no pixel data")
    try:
        raw = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown transfer syntax")
        first = str(exc).strip().splitlines()
        detail = (first[-1] if first else type(exc).__name__)[:200]
        raise ImageReadError(file, f"cannot decode pixel data ({name}): {detail}") from None
    if int(ds.get("SamplesPerPixel", 1)) == 1:
        arr = apply_modality_lut(raw, ds).astype(np.float32)
    else:
        arr = raw.astype(np.float32)  # colour: no modality LUT; channels-last handled by the caller
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (1.0, 1.0)
    meta: dict[str, Any] = {
        "format": "dicom",
        "spacing": (float(spacing[0]), float(spacing[1])),
        "modality": str(ds.get("Modality", "")),
        "frames": int(ds.get("NumberOfFrames", 1) or 1),
        "patient_id": str(ds.get("PatientID", "")),
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "transfer_syntax": str(getattr(ds.file_meta, "TransferSyntaxUID", "")),
    }
    return arr, meta
