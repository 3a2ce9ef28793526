"""The hostile-input corpus, generated at test time (nothing binary is committed).

Each builder writes a few tiny files and returns their paths; the tests in this
folder feed them to the CLI as a new user would and check the answer: exit
code, one line naming the file, no traceback, the good inputs still processed.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

H, W = 24, 16  # the tiny run's image size


def good_png(path: Path, seed: int = 0, lesion: bool = False) -> Path:
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 40, size=(H, W)).astype(np.uint8)
    if lesion:
        img[8:12, 6:10] = 250
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def rgb_png(path: Path) -> Path:
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 0] = 200
    rgb[8:12, 6:10] = 255
    Image.fromarray(rgb).save(path)
    return path


def gif_named_png(path: Path) -> Path:
    img = np.full((H, W), 30, np.uint8)
    img[8:12, 6:10] = 200
    Image.fromarray(img).convert("P").save(path, format="GIF")
    return path


def npy(path: Path, arr: np.ndarray) -> Path:
    np.save(path, arr, allow_pickle=False)
    return path


def huge_float64_npy(path: Path) -> Path:
    """Finite as float64, infinite once cast to float32."""
    arr = np.full((H, W), 1e300, np.float64)
    arr[:4] = -1e300
    return npy(path, arr)


def structured_npy(path: Path) -> Path:
    return npy(path, np.zeros((H, W), dtype=[("a", "<f4"), ("b", "<i2")]))


def string_npy(path: Path) -> Path:
    return npy(path, np.full((H, W), "x", dtype="<U3"))


def _dataset(modality: str, sop_class: str, rows: int, cols: int):
    """An uncompressed dataset from scintix's own writer, with the image geometry the case needs."""
    from scintix.data.dicom_write import _new_dataset

    ds = _new_dataset(sop_class, modality, "ROBUST")
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    return ds


def rgb_secondary_capture(path: Path) -> Path:
    ds = _dataset("OT", "1.2.840.10008.5.1.4.1.1.7", H, W)
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[..., 1] = 120
    rgb[8:12, 6:10] = (250, 40, 40)
    ds.PixelData = rgb.tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def ct_two_frames(path: Path) -> Path:
    ds = _dataset("CT", "1.2.840.10008.5.1.4.1.1.2.1", H, W)
    ds.NumberOfFrames = 2
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.PixelData = (np.arange(2 * H * W) % 2000).astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def wrong_length_dicom(path: Path) -> Path:
    """Rows/Columns that do not match the pixel data (declared 20x16, 24x16 stored): a scrambled image if decoded."""
    ds = _dataset("NM", "1.2.840.10008.5.1.4.1.1.20", H - 4, W)
    ds.PixelData = (np.arange(H * W) % 200).astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def swapped_dims_dicom(path: Path) -> Path:
    """Rows and Columns swapped with pixel data one row short of the declared size."""
    ds = _dataset("NM", "1.2.840.10008.5.1.4.1.1.20", W, H)
    ds.PixelData = (np.arange((H - 1) * W) % 200).astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def corrupt_deflate_dicom(path: Path) -> Path:
    """Deflated Explicit VR Little Endian whose deflated body is garbage."""
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds = _dataset("NM", "1.2.840.10008.5.1.4.1.1.20", H, W)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.PixelData = np.zeros((H, W), np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    # keep preamble + file meta, replace the deflated dataset by bytes that are not a deflate stream
    path.write_bytes(data[: _meta_end(data)] + b"\xff" * 200)  # 0xff: deflate block type 3, invalid
    return path


def _meta_end(data: bytes) -> int:
    # group 0002 ends where the first non-0002 tag begins; file meta is explicit VR little endian
    pos = 132
    while data[pos : pos + 2] == b"\x02\x00":
        vr = data[pos + 4 : pos + 6]
        if vr in (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN"):
            length = int.from_bytes(data[pos + 8 : pos + 12], "little")
            pos += 12 + length
        else:
            length = int.from_bytes(data[pos + 6 : pos + 8], "little")
            pos += 8 + length
    return pos


def nm_without_views(path: Path) -> Path:
    """A 2-frame NM file whose frames carry no view information."""
    ds = _dataset("NM", "1.2.840.10008.5.1.4.1.1.20", H, W)
    ds.NumberOfFrames = 2
    ds.PixelData = (np.arange(2 * H * W) % 200).astype(np.uint16).tobytes()
    ds.save_as(str(path), enforce_file_format=True)
    return path


def malicious_pickle(path: Path) -> Path:
    class Evil:
        def __reduce__(self):
            return (print, ("PWNED",))

    path.write_bytes(pickle.dumps({"model": Evil()}))
    return path


def truncated(src: Path, dst: Path, keep: float = 0.5) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def csv_utf16(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-16"))
    return path


def csv_latin1(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("latin-1"))
    return path


