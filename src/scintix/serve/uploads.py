"""Uploaded files, checked before anything decodes them: size, type by content, image dimensions; stored under a name we choose.

The user's file name is never used as a path (only its suffix is ignored too:
the type comes from the bytes). Each check fails with :class:`UploadError`,
whose ``status`` is the HTTP code the API answers with.
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

__all__ = ["UploadError", "UploadLimits", "sniff_type", "check_dimensions", "store_upload"]


class UploadError(ValueError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 64 * 1024 * 1024
    max_pixels: int = 40_000_000  # per frame: a 1024x256 whole-body scan is 262,144; a CT slice 262,144
    max_frames: int = 16


def sniff_type(head: bytes) -> str | None:
    """``dicom``, ``png``, ``jpeg`` or ``npy`` from the first bytes; None for anything else."""
    if len(head) >= 132 and head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    return None


def check_dimensions(path: Path, kind: str, limits: UploadLimits) -> tuple[int, int, int]:
    """(frames, rows, columns) read from the header only; a decompression bomb or a huge image is refused before decoding."""
    if kind == "dicom":
        import pydicom

        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception as exc:  # noqa: BLE001 - any header failure is the file's problem
            raise UploadError(400, f"not a readable DICOM file ({type(exc).__name__})") from None
        rows, cols, frames = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0), int(ds.get("NumberOfFrames") or 1)
        if not rows or not cols:
            raise UploadError(400, "DICOM file without an image (no Rows/Columns)")
    elif kind in ("png", "jpeg"):
        from PIL import Image

        try:
            with Image.open(path) as im:  # reads the header only
                cols, rows = im.size
                frames = getattr(im, "n_frames", 1)
        except Exception as exc:  # noqa: BLE001
            raise UploadError(400, f"not a readable {kind.upper()} image ({type(exc).__name__})") from None
    else:
        import numpy as np

        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:  # noqa: BLE001
            raise UploadError(400, f"not a readable .npy array ({type(exc).__name__})") from None
        if arr.ndim not in (2, 3):
            raise UploadError(400, f".npy array of shape {arr.shape}; expected (H, W) or (1, H, W)")
        frames, (rows, cols) = (1 if arr.ndim == 2 else arr.shape[0]), arr.shape[-2:]
    if rows * cols > limits.max_pixels:
        raise UploadError(413, f"image of {rows}x{cols} pixels is over the limit of {limits.max_pixels:,} pixels")
    if frames > limits.max_frames:
        raise UploadError(413, f"{frames} frames is over the limit of {limits.max_frames}")
    return frames, rows, cols


def store_upload(data: bytes, folder: str | Path | None, limits: UploadLimits) -> tuple[Path, str]:
    """Write an upload under a random name with the suffix of its sniffed type, check it; returns (path, type)."""
    if not data:
        raise UploadError(400, "empty file (0 bytes)")
    if len(data) > limits.max_bytes:
        raise UploadError(413, f"file of {len(data):,} bytes is over the limit of {limits.max_bytes:,}")
    kind = sniff_type(data[:132])
    if kind is None:
        raise UploadError(415, "unsupported file type: send DICOM, PNG, JPEG or a .npy array")
    folder = Path(folder or tempfile.gettempdir())
    suffix = {"dicom": "dcm", "jpeg": "jpg"}.get(kind, kind)
    path = folder / f"upload-{uuid.uuid4().hex}.{suffix}"
    path.write_bytes(data)
    try:
        check_dimensions(path, kind, limits)
    except UploadError:
        path.unlink(missing_ok=True)
        raise
    return path, kind


