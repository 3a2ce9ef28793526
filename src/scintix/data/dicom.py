"""DICOM through pydicom: real values (counts, HU), NM views, CT windows, folders.

* :func:`read_dicom` -- any image as ``(frames, H, W)`` real values (modality LUT applied).
* :func:`read_nm` -- a planar NM file (single- or multi-frame) as *named views*
  (``ant``, ``post``), each frame's view found from the header.
* :func:`apply_window` / :func:`window_stack` -- CT windows (brain, subdural, bone)
  as [0, 1] channels; :func:`read_ct_series` stacks a series folder as slices.
* :func:`scan_dicom_folder` / :func:`read_studies` -- a folder of files as
  studies and series (manifest rows: :func:`scintix.data.manifest.manifest_from_dicom`).

Writing NM and CT files lives in :mod:`.dicom_write`.
"""

from __future__ import annotations

import logging
import re
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import ImageReadError, looks_like_dicom

__all__ = [
    "read_dicom",
    "read_nm",
    "NMScan",
    "identify_views",
    "WINDOWS",
    "apply_window",
    "window_stack",
    "read_ct_series",
    "DicomFile",
    "scan_dicom_folder",
    "nm_views",
    "Study",
    "read_studies",
    "read_view",
]

# (centre, width) in HU. Brain/subdural/bone are the usual head-CT reading windows
# (e.g. the RSNA intracranial-haemorrhage challenge's three-window input).
WINDOWS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (80.0, 200.0),
    "stroke": (40.0, 40.0),
    "bone": (600.0, 2800.0),
    "soft_tissue": (50.0, 400.0),
    "lung": (-600.0, 1500.0),
}


@contextmanager
def _captured(sink: list[str]):
    """pydicom's warnings and log lines go into ``sink`` instead of stderr (our one line reports them)."""
    logger = logging.getLogger("pydicom")
    was = logger.disabled
    logger.disabled = True
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.disabled = was
        sink += [str(w.message).strip().splitlines()[0][:160] for w in caught if str(w.message).strip()]


def _detail(exc: BaseException, heard: list[str]) -> str:
    first = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {first[-1][:160]}" if first else type(exc).__name__
    return text + (f"; pydicom said: {heard[0]}" if heard else "")


def _dcmread(file: str | Path, stop_before_pixels: bool = False):
    import pydicom
    from pydicom.errors import InvalidDicomError

    heard: list[str] = []
    try:
        with _captured(heard):
            ds = pydicom.dcmread(str(file), stop_before_pixels=stop_before_pixels)
            if not stop_before_pixels and "PixelData" in ds:
                ds.PixelData  # noqa: B018 -- decode deferred elements (a corrupt deflated body) here, inside the capture
    except InvalidDicomError:
        raise ImageReadError(file, "not a DICOM file") from None
    except Exception as exc:  # zlib.error, struct.error, OSError, ...: the file is damaged
        raise ImageReadError(file, f"unreadable DICOM ({_detail(exc, heard)})") from None
    if heard:
        ds.scintix_notices = heard  # kept for the caller; read warnings are not errors by themselves
    return ds


def _check_pixel_length(ds, file: str | Path) -> None:
    """Uncompressed pixel data must have exactly the bytes the header declares, else the image would be scrambled."""
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if syntax is None or getattr(syntax, "is_compressed", False):
        return
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames, spp, bits = int(ds.get("NumberOfFrames", 1) or 1), int(ds.get("SamplesPerPixel", 1)), int(ds.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ImageReadError(file, f"DICOM header lacks the image size ({type(exc).__name__}: {exc})") from None
    if min(rows, cols, frames, spp, bits) <= 0:
        raise ImageReadError(file, f"DICOM header declares an empty image (Rows {rows}, Columns {cols}, frames {frames})")
    n = rows * cols * frames * spp
    expected = (n + 7) // 8 if bits == 1 else n * (bits // 8)
    have = len(ds.PixelData)
    if have not in (expected, expected + 1):  # + 1: odd lengths are padded to even
        raise ImageReadError(file, f"pixel data holds {have} bytes but Rows x Columns x frames = {rows} x {cols} x {frames} at {bits} bits needs {expected}: the header does not match the pixels")


def _pixels(ds, file: str | Path) -> np.ndarray:
    from pydicom.pixels import apply_modality_lut

    if "PixelData" not in ds:
        raise ImageReadError(file, "DICOM file has no pixel data")
    _check_pixel_length(ds, file)
    heard: list[str] = []
    try:
        with _captured(heard):
            raw = ds.pixel_array
    except Exception as exc:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", "unknown transfer syntax")
        raise ImageReadError(file, f"cannot decode pixel data ({name}): {_detail(exc, heard)}") from None
    if int(ds.get("SamplesPerPixel", 1)) != 1:
        return raw.astype(np.float32)  # colour: no modality LUT; channels-last handled by the caller
    arr = apply_modality_lut(raw, ds).astype(np.float32)
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        arr = arr.max() + arr.min() - arr  # MONOCHROME1 stores "white = low"; make high = more signal
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    return arr.reshape(frames, *arr.shape[-2:]) if arr.ndim >= 2 else arr


def _meta(ds) -> dict[str, Any]:
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing") or (1.0, 1.0)
    return {
        "format": "dicom",
        "spacing": (float(spacing[0]), float(spacing[1])),
        "modality": str(ds.get("Modality", "")),
        "frames": int(ds.get("NumberOfFrames", 1) or 1),
        "patient_id": str(ds.get("PatientID", "")),
        "study_uid": str(ds.get("StudyInstanceUID", "")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "transfer_syntax": str(getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", "")),
        "notices": [f"pydicom: {n}" for n in getattr(ds, "scintix_notices", [])],
    }


def read_dicom(file: str | Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a DICOM image as ``(frames, H, W)`` real values plus metadata.

    Modality LUT (RescaleSlope/Intercept) is applied, so CT comes out in HU and
    NM in counts. Compressed transfer syntaxes need the ``dicom`` extra
    (pylibjpeg + openjpeg); a missing or failing decoder is reported as such.

    Raises:
        ImageReadError: not DICOM, no pixel data, or pixel data that cannot be decoded.
    """
    ds = _dcmread(file)
    return _pixels(ds, file), _meta(ds)


# --------------------------------------------------------------------------- NM views

_ANT = re.compile(r"(?<![A-Z])(ANT|ANTERIOR|ANTERIOR PROJECTION|AP)(?![A-Z])|前位")
_POST = re.compile(r"(?<![A-Z])(POST|POSTERIOR|POSTERIOR PROJECTION|PA)(?![A-Z])|后位")


def _view_from_text(text: str) -> str | None:
    text = text.upper().replace("_", " ")
    ant, post = bool(_ANT.search(text)), bool(_POST.search(text))
    if ant != post:
        return "ant" if ant else "post"
    return None


def _as_list(value) -> list:
    # pydicom gives a multi-valued element as a MultiValue and a single value as a scalar
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue" else [value]


def _code_meanings(seq) -> str:
    return " ".join(str(item.get("CodeMeaning", "")) for item in (seq or []))


def identify_views(ds) -> list[tuple[str, str]]:
    """``(view, how)`` for every frame of an NM dataset, from the header only.

    Evidence, strongest first: the view code of the frame's detector
    (DetectorInformationSequence / ViewCodeSequence + DetectorVector), the
    frame's label (FrameLabelVector), the image's own descriptions when they
    name one view (SeriesDescription, ImageID, ImageComments, ...), and last
    the detector number by the dual-head whole-body convention (detector 1
    anterior, 2 posterior). Frames with no evidence are named ``frame<i>``.
    Repeated names (several energy windows) get a suffix: ``ant``, ``ant_2``.
    """
    n = int(ds.get("NumberOfFrames", 1) or 1)
    det_vec = _as_list(ds.get("DetectorVector"))
    det_vec = det_vec if len(det_vec) == n else ([det_vec[0]] * n if len(det_vec) == 1 else [None] * n)
    det_info = list(ds.get("DetectorInformationSequence") or [])
    labels = _as_list(ds.get("FrameLabelVector"))
    labels = labels if len(labels) == n else [None] * n
    whole = " ".join(str(ds.get(k, "")) for k in ("SeriesDescription", "ImageID", "ImageComments", "ProtocolName", "DerivationDescription"))
    whole_view = _view_from_text(whole) if n == 1 else None
    top_code = _view_from_text(_code_meanings(ds.get("ViewCodeSequence")))
    out: list[tuple[str, str]] = []
    for i in range(n):
        det = det_vec[i]
        view, how = None, ""
        if det is not None and 1 <= int(det) <= len(det_info):
            view = _view_from_text(_code_meanings(det_info[int(det) - 1].get("ViewCodeSequence")))
            how = f"view code of detector {int(det)}"
        if view is None and top_code and n == 1:
            view, how = top_code, "ViewCodeSequence"
        if view is None and labels[i] is not None:
            view, how = _view_from_text(str(labels[i])), f"frame label {labels[i]!r}"
        if view is None and whole_view:
            view, how = whole_view, "image description"
        if view is None and det is not None and int(det) in (1, 2):
            view = "ant" if int(det) == 1 else "post"
            how = f"detector {int(det)} (convention: detector 1 anterior, 2 posterior)"
        if view is None:
            view, how = f"frame{i}", "no view information in the header"
        out.append((view, how))
    seen: dict[str, int] = {}
    named = []
    for view, how in out:
        seen[view] = seen.get(view, 0) + 1
        named.append((view if seen[view] == 1 else f"{view}_{seen[view]}", how))
    return named


@dataclass
class NMScan:
    """A planar NM image: named views of real counts, each ``(H, W)`` float32."""

    path: str
    views: dict[str, np.ndarray]
    how: dict[str, str]  # how each view was identified
    meta: dict[str, Any] = field(default_factory=dict)


def read_nm(file: str | Path, mirror_posterior: bool = False) -> NMScan:
    """Read a planar NM file (whole-body bone scan, thyroid) as named views.

    Args:
        mirror_posterior: flip posterior views left-right so the patient's
            right is on the same side as in the anterior view (as some
            readers prefer for side-by-side comparison). Off by default: the
            pixels stay as acquired.

    Raises:
        ImageReadError: not DICOM, not NM, or undecodable pixel data.
    """
    ds = _dcmread(file)
    modality = str(ds.get("Modality", ""))
    if modality not in ("NM", "PT", ""):
        raise ImageReadError(file, f"expected an NM image, the file's modality is {modality}")
    frames = _pixels(ds, file)
    views, how = {}, {}
    for (name, why), frame in zip(identify_views(ds), frames):
        if mirror_posterior and name.startswith("post"):
            frame = frame[:, ::-1].copy()
        views[name], how[name] = frame, why
    meta = _meta(ds)
    meta.update(
        patient_position=str(ds.get("PatientPosition", "")),
        counts_accumulated=float(ds.get("CountsAccumulated", 0) or 0),
        radionuclide=_radionuclide(ds),
        mirrored_posterior=mirror_posterior,
    )
    return NMScan(str(file), views, how, meta)


def _radionuclide(ds) -> str:
    info = ds.get("RadiopharmaceuticalInformationSequence")
    if info:
        return _code_meanings(info[0].get("RadionuclideCodeSequence")) or str(info[0].get("Radiopharmaceutical", ""))
    return ""


def read_view(file: str | Path, view: str) -> tuple[np.ndarray, dict[str, Any]]:
    """One named view of an NM file as ``(1, H, W)``: what ``file.dcm#ant`` means in a manifest."""
    scan = read_nm(file)
    if view not in scan.views:
        raise ImageReadError(f"{file}#{view}", f"no view {view!r} in this file (has {sorted(scan.views)})")
    meta = dict(scan.meta, view=view, view_how=scan.how[view])
    return scan.views[view][None], meta


# --------------------------------------------------------------------------- CT


def apply_window(hu: np.ndarray, window: str | tuple[float, float]) -> np.ndarray:
    """Map HU to [0, 1] through a window given by name or as ``(centre, width)``.

    Linear between centre - width/2 (-> 0) and centre + width/2 (-> 1), clipped.
    """
    if isinstance(window, str):
        if window not in WINDOWS:
            raise ValueError(f"unknown window {window!r}; known: {sorted(WINDOWS)}")
        window = WINDOWS[window]
    centre, width = float(window[0]), float(window[1])
    if width <= 0:
        raise ValueError(f"window width must be positive, got {width}")
    low = centre - width / 2.0
    return np.clip((np.asarray(hu, dtype=np.float32) - low) / width, 0.0, 1.0)


def window_stack(hu: np.ndarray, windows: Sequence[str | tuple[float, float]]) -> np.ndarray:
    """Stack several windows of one ``(H, W)`` slice as channels: ``(len(windows), H, W)``."""
    hu = np.asarray(hu)
    if hu.ndim == 3 and hu.shape[0] == 1:
        hu = hu[0]
    if hu.ndim != 2:
        raise ValueError(f"window_stack needs one 2-D slice, got shape {hu.shape}")
    return np.stack([apply_window(hu, w) for w in windows]).astype(np.float32)


# --------------------------------------------------------------------------- folders


@dataclass(frozen=True)
class DicomFile:
    """Header facts of one DICOM file, enough to group and order it."""

    path: str
    modality: str
    patient_id: str
    study_uid: str
    series_uid: str
    instance: int
    z: float | None  # ImagePositionPatient[2] (CT slice position)
    frames: int
    description: str
    views: tuple[str, ...] = ()  # NM: the frames' view names (see identify_views); empty otherwise


def scan_dicom_folder(folder: str | Path) -> tuple[list[DicomFile], list[str]]:
    """Every DICOM file under ``folder`` (recursive), headers only, plus errors.

    Files that are not DICOM are ignored unless named ``.dcm``/``.dicom`` (then
    they are reported); unreadable DICOM files are reported as one-line errors
    and the scan goes on.
    """
    files, errors = [], []
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        named = path.suffix.lower() in (".dcm", ".dicom")
        try:
            if not named and not looks_like_dicom(path):
                continue
            ds = _dcmread(path, stop_before_pixels=True)
        except ImageReadError as exc:
            if named:
                errors.append(str(exc))
            continue
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            continue
        files.append(_file_info(path, ds))
    return files, errors


def read_ct_series(source: str | Path | Sequence[str | Path]) -> tuple[np.ndarray, dict[str, Any]]:
    """A CT series (folder or file list) as ``(slices, H, W)`` HU, ordered along z.

    Slices are sorted by ImagePositionPatient z when every slice has it, else
    by InstanceNumber. A folder holding more than one series is an error
    that lists them.
    """
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        files, errors = scan_dicom_folder(source)
        if errors:
            raise ImageReadError(source, f"{len(errors)} unreadable file(s), e.g. {errors[0]}")
    else:
        files = [_file_info(p, _dcmread(p, stop_before_pixels=True)) for p in source]  # type: ignore[union-attr]
    files = [f for f in files if f.modality == "CT"]
    if not files:
        raise ImageReadError(str(source), "no CT slices found")
    series = sorted({f.series_uid for f in files})
    if len(series) > 1:
        raise ImageReadError(str(source), f"{len(series)} CT series in one folder ({series[:3]}); give one series")
    if all(f.z is not None for f in files):
        files.sort(key=lambda f: f.z)  # type: ignore[arg-type,return-value]
    else:
        files.sort(key=lambda f: f.instance)
    slices, meta = [], {}
    for f in files:
        arr, meta = read_dicom(f.path)
        slices.append(arr[0])
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        raise ImageReadError(str(source), f"slices of different sizes {sorted(shapes)}")
    meta = dict(meta, slices=len(slices), files=[f.path for f in files])
    return np.stack(slices), meta


def _file_info(path: str | Path, ds) -> DicomFile:
    pos = ds.get("ImagePositionPatient")
    return DicomFile(
        path=str(Path(path).resolve()),
        modality=str(ds.get("Modality", "")),
        patient_id=str(ds.get("PatientID", "")),
        study_uid=str(ds.get("StudyInstanceUID", "")),
        series_uid=str(ds.get("SeriesInstanceUID", "")),
        instance=int(ds.get("InstanceNumber", 0) or 0),
        z=float(pos[2]) if pos is not None and len(pos) == 3 else None,
        frames=int(ds.get("NumberOfFrames", 1) or 1),
        description=str(ds.get("SeriesDescription", "")),
        views=tuple(v for v, _ in identify_views(ds)) if str(ds.get("Modality", "")) == "NM" else (),
    )


def nm_views(path: str | Path) -> list[str]:
    """View names of an NM file from its header; ``[]`` for other modalities or unreadable files."""
    try:
        return list(_file_info(path, _dcmread(path, stop_before_pixels=True)).views)
    except ImageReadError:
        return []  # reported when the image itself is read


@dataclass
class Study:
    """One study of a DICOM folder: planar NM scans (named views) and CT series (HU volumes)."""

    study_uid: str
    patient_id: str
    nm: list[NMScan] = field(default_factory=list)
    ct: dict[str, tuple[np.ndarray, dict[str, Any]]] = field(default_factory=dict)  # series UID -> (slices, meta)
    other: list[str] = field(default_factory=list)  # files of other modalities, not read


def read_studies(folder: str | Path) -> tuple[list[Study], list[str]]:
    """Read a folder of DICOM files as studies (grouped by StudyInstanceUID), plus one-line errors.

    NM files become :class:`NMScan` objects with named views; CT files are
    grouped by series and stacked along z; an unreadable file or series is
    reported and the rest is still read.
    """
    files, errors = scan_dicom_folder(folder)
    studies: dict[str, Study] = {}
    for f in files:
        st = studies.setdefault(f.study_uid, Study(f.study_uid, f.patient_id))
        if f.modality == "NM":
            try:
                st.nm.append(read_nm(f.path))
            except ImageReadError as exc:
                errors.append(str(exc))
        elif f.modality != "CT":
            st.other.append(f.path)
    for st in studies.values():
        for series in sorted({f.series_uid for f in files if f.study_uid == st.study_uid and f.modality == "CT"}):
            paths = [f.path for f in files if f.series_uid == series and f.study_uid == st.study_uid and f.modality == "CT"]
            try:
                st.ct[series] = read_ct_series(paths)
            except ImageReadError as exc:
                errors.append(str(exc))
    return list(studies.values()), errors
