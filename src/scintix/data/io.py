"""Image readers: every reader returns a ``(C, H, W)`` float32 array plus a meta dict.

The meta dict always holds ``spacing`` (row, column spacing in mm, 1.0 when the
format has none), ``format`` and ``source`` (the path). A file that cannot be
read raises :class:`ImageReadError`, whose message is one line naming the file
and the cause; batch callers catch it, report it, and go on with other files.

Paths may point inside a NumPy ``.npz`` in MedMNIST layout with a fragment:
``pneumoniamnist_28.npz#train/17`` is ``train_images[17]``.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ImageReadError", "read_image", "pixel_hash", "IMAGE_SUFFIXES", "split_fragment"]

from .base import ImageReadError, looks_like_dicom, split_fragment

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".npy", ".npz", ".dcm", ".dicom"}


def read_image(path: str | Path, channels: int | None = 1) -> tuple[np.ndarray, dict[str, Any]]:
    """Read one image as a ``(C, H, W)`` float32 array and its metadata.

    Args:
        path: PNG/JPEG/TIFF/BMP, ``.npy``, ``.npz#split/index`` (MedMNIST layout)
            or DICOM (``.dcm``, or any file with the DICM preamble); ``scan.dcm#post``
            is one named view of a planar NM file (see :func:`~scintix.data.dicom.read_nm`).
        channels: 1 converts colour to grey (luminance), ``None`` keeps what the
            file has. Multi-frame DICOM keeps its frames as channels.

    Returns:
        ``(array, meta)``; intensities are real values (DICOM rescale applied),
        not scaled to [0, 1].

    Raises:
        ImageReadError: the file is missing, unreadable or not a 2-D image.

    >>> arr, meta = read_image("scan.png")  # doctest: +SKIP
    >>> arr.shape, meta["spacing"]  # doctest: +SKIP
    ((1, 171, 68), (1.0, 1.0))
    """
    file, split, index = split_fragment(path)
    if not file.is_file():
        raise ImageReadError(path, "file not found")
    suffix = file.suffix.lower()
    try:
        if suffix == ".npz":
            arr, meta = _read_npz(file, split, index)
        elif split is not None:  # scan.dcm#ant: one named view of an NM file
            from .dicom import read_view

            arr, meta = read_view(file, split)
        elif suffix == ".npy":
            arr, meta = np.load(file, allow_pickle=False), {"format": "npy"}
        elif suffix in (".dcm", ".dicom") or looks_like_dicom(file):
            from .dicom import read_dicom

            arr, meta = read_dicom(file)
        else:
            arr, meta = _read_pil(file)
    except ImageReadError:
        raise
    except Exception as exc:  # decoder errors come in many types; keep the message, name the file
        raise ImageReadError(path, f"cannot decode ({type(exc).__name__}: {_first_line(exc)})") from exc
    arr, colour = _to_chw(np.asarray(arr), path)
    notices = list(meta.pop("notices", []))
    if channels == 1 and arr.shape[0] == 3 and colour:
        if not (np.array_equal(arr[0], arr[1]) and np.array_equal(arr[0], arr[2])):
            notices.append("colour image converted to grey (luminance)")
        arr = np.tensordot(np.array([0.299, 0.587, 0.114]), arr.astype(np.float64), axes=1)[None]
    # Cast first, check after: float64 values near 1e300 are finite but overflow to inf in float32.
    with np.errstate(over="ignore", invalid="ignore"):
        out = arr.astype(np.float32)
    if not np.isfinite(out).all():
        big = arr.dtype.kind == "f" and bool(np.isfinite(arr).all())
        raise ImageReadError(path, "values beyond the float32 range (|x| > 3.4e38)" if big else "contains NaN or infinite values")
    meta.setdefault("spacing", (1.0, 1.0))
    meta["source"] = str(path)
    meta["shape"] = tuple(int(s) for s in out.shape)
    if notices:
        meta["notices"] = notices
    return out, meta


def pixel_hash(arr: np.ndarray) -> str:
    """Hash of the pixel values and shape: equal hashes mean exact duplicate images."""
    arr = np.ascontiguousarray(arr)
    h = hashlib.sha1(str(arr.shape).encode())
    h.update(arr.astype(np.float32, copy=False).tobytes())
    return h.hexdigest()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else "no message"


def _read_pil(file: Path) -> tuple[np.ndarray, dict[str, Any]]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(file) as img:
            img.load()
            fmt = (img.format or file.suffix.lstrip(".")).lower()
            if img.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr"):
                img = img.convert("RGB")
            if img.mode == "1":
                img = img.convert("L")
            arr = np.asarray(img)
    except UnidentifiedImageError:
        raise ImageReadError(file, "not a recognised image format") from None
    except OSError as exc:  # truncated or corrupt image data
        raise ImageReadError(file, f"corrupt image ({_first_line(exc)})") from None
    return arr, {"format": "jpeg" if fmt == "jpg" else fmt}


@functools.lru_cache(maxsize=4)
def _load_npz(file: str, mtime: float) -> dict[str, np.ndarray]:
    # Loaded whole once: MedMNIST files are small and read thousands of times.
    with np.load(file, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _read_npz(file: Path, split: str | None, index: int | None) -> tuple[np.ndarray, dict[str, Any]]:
    arrays = _load_npz(str(file), file.stat().st_mtime)
    if split is None:
        keys = list(arrays)
        if len(keys) != 1:
            raise ImageReadError(file, f"npz holds {keys}; name one image as 'file.npz#<split>/<index>'")
        return arrays[keys[0]], {"format": "npz"}
    key = f"{split}_images"
    if key not in arrays:
        raise ImageReadError(f"{file}#{split}/{index}", f"no array '{key}' (has {sorted(arrays)})")
    images = arrays[key]
    if index is None or not 0 <= index < len(images):
        raise ImageReadError(f"{file}#{split}/{index}", f"index out of range (0..{len(images) - 1})")
    return images[index], {"format": "npz"}


def _to_chw(arr: np.ndarray, path: str | Path) -> tuple[np.ndarray, bool]:
    """``(C, H, W)`` and whether the file stored colour channels last (RGB/RGBA as images do)."""
    if arr.dtype.kind not in "biuf":  # structured, string, object, complex: not an image
        raise ImageReadError(path, f"array of dtype {arr.dtype} is not an image (needs numbers)")
    if arr.size == 0:
        raise ImageReadError(path, "empty array")
    if arr.ndim == 2:
        return arr[None], False
    if arr.ndim == 3:
        if arr.shape[-1] in (1, 3, 4) and arr.shape[0] > 4:
            arr = np.moveaxis(arr, -1, 0)
            return (arr[:3] if arr.shape[0] == 4 else arr), arr.shape[0] in (3, 4)
        return arr, False
    raise ImageReadError(path, f"expected a 2-D image, got an array of shape {arr.shape}")
