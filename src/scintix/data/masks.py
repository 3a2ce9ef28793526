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

from .io import ImageReadError, read_image

__all__ = ["read_mask", "MASK_MODES"]

MASK_MODES = ("binary", "values")


def _read_dicom_seg(path: Path) -> np.ndarray:
    from .._optional import require

    hd = require("highdicom")

    seg = hd.seg.segread(str(path))
    numbers = list(seg.segment_numbers)
    # one label map: each segment's pixels take its segment number (later segments win where they overlap)
    arr = seg.pixel_array  # (frames, H, W) for a 2-D source: one frame per segment
    arr = np.asarray(arr)
    if arr.ndim == 2:
        return (arr > 0).astype(np.uint8) * numbers[0]
    out = np.zeros(arr.shape[-2:], np.uint8)
    for i, number in enumerate(numbers[: arr.shape[0]]):
        out[arr[i] > 0] = number
    return out


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
        label = _read_dicom_seg(p)
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
