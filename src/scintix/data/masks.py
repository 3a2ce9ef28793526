"""Segmentation masks: read one as a label map ``(H, W)`` uint8, whatever it was stored as.

Sources: PNG/TIFF/BMP or ``.npy`` label images (0/255 or 0/1 binary masks,
or value-coded masks such as the simulator's finding ids), and DICOM SEG
objects (read with highdicom; segment numbers become label values; the
``dicom`` extra). ``mode`` says how stored values become classes:

* ``binary``: any non-zero value is the foreground (class 1): a 0/255 PNG,
  or the simulator's value-coded findings merged into one lesion mask;
* ``values``: the stored value is the class index (0 = background), for
  per-class masks; values above ``n_classes - 1`` are an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._optional import require
from .io import ImageReadError, read_image

__all__ = ["read_mask", "MASK_MODES"]

MASK_MODES = ("binary", "values")


def _read_dicom_seg(path: Path) -> np.ndarray:
    """A DICOM SEG over one 2-D source image as a label map (pixel value = segment number)."""
    hd = require("highdicom")
    seg = hd.seg.segread(str(path))
    sources = seg.get_source_image_uids()
    if len(sources) != 1:
        raise ImageReadError(path, f"DICOM SEG references {len(sources)} source images; one 2-D mask per file is expected")
    labels = seg.get_pixels_by_source_instance(source_sop_instance_uids=[sources[0][2]], combine_segments=True)
    return np.asarray(labels)[0].astype(np.uint8)


def read_mask(path: str | Path, mode: str = "binary", n_classes: int = 2) -> np.ndarray:
    """The label map of ``path``; raises :class:`ImageReadError` naming the file when it cannot be used."""
    if mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mode!r}; choose from {', '.join(MASK_MODES)}")
    p = Path(path)
    try:
        import pydicom

        is_seg = p.suffix.lower() in (".dcm", ".dicom") and pydicom.dcmread(p, stop_before_pixels=True).get("SOPClassUID") == "1.2.840.10008.5.1.4.1.1.66.4"
    except Exception:
        is_seg = False
    if is_seg:
        try:
            label = _read_dicom_seg(p)
        except ImageReadError:
            raise
        except Exception as exc:  # highdicom/pydicom errors come in many types; name the file
            raise ImageReadError(path, f"cannot read DICOM SEG ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})") from exc
    else:
        arr, _ = read_image(path, channels=1)
        label = np.rint(arr[0]).astype(np.int64)
    if label.min() < 0:
        raise ImageReadError(path, "mask has negative values")
    if mode == "binary":
        return (label > 0).astype(np.uint8)
    if label.max() >= n_classes:
        raise ImageReadError(path, f"mask value {int(label.max())} but only {n_classes} classes (0 = background) are configured")
    return label.astype(np.uint8)
