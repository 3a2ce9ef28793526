"""The manifest: one CSV row per image, the contract between data and training.

Columns: ``path`` (required; relative paths are relative to the CSV's folder),
``label`` (an integer class, a class name, or for multi-label several names or
indices joined by ``;``), ``patient_id`` (recommended: splits group by it; when
absent every image is its own patient and a warning says so), and optionally
``view``, ``report``, ``mask``, ``split`` (a predefined train/val/test
assignment) and any other columns, kept as ``extra``.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .dicom import nm_views, scan_dicom_folder
from .io import IMAGE_SUFFIXES, split_fragment

__all__ = [
    "Record",
    "ManifestError",
    "read_manifest",
    "write_manifest",
    "manifest_from_npz",
    "manifest_from_folder",
    "load_data",
    "load_inputs",
    "encode_labels",
    "manifest_from_dicom",
]

log = logging.getLogger(__name__)

KNOWN_COLUMNS = ("path", "label", "patient_id", "view", "report", "mask", "split")
SPLITS = ("train", "val", "test")
EXTRA_MASK_COLUMNS = ("mask_class", "mask_metastasis")  # the simulator's other masks (``data.mask_column``)
PATH_COLUMNS = ("cross_path", *EXTRA_MASK_COLUMNS)  # extra columns holding file paths, resolved like ``path``


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file and the row."""


@dataclass(frozen=True)
class Record:
    """One image of a manifest. ``label`` is the raw text of the label column."""

    path: str
    label: str | None = None
    patient_id: str = ""
    view: str | None = None
    report: str | None = None
    mask: str | None = None
    split: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)


def read_manifest(csv_path: str | Path, require_label: bool = True, check_files: bool = True) -> list[Record]:
    """Read and validate a manifest CSV.

    Raises:
        ManifestError: missing columns, empty labels, duplicate paths, unknown
            split names, or (``check_files``) files that do not exist; all
            problems of a kind are listed together.
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise ManifestError(f"{csv_path}: manifest not found")
    reader = csv.DictReader(io.StringIO(_csv_text(csv_path), newline=""))
    try:
        columns = reader.fieldnames or []
        rows = list(reader)
    except csv.Error as exc:  # e.g. a field over csv's size limit (131072 characters)
        raise ManifestError(f"{csv_path}: line {reader.line_num}: unreadable CSV ({exc})") from None
    if "path" not in columns:
        raise ManifestError(f"{csv_path}: no 'path' column (columns: {columns})")
    if require_label and "label" not in columns:
        raise ManifestError(f"{csv_path}: no 'label' column (columns: {columns})")
    if not rows:
        raise ManifestError(f"{csv_path}: manifest has no rows")
    if "patient_id" not in columns:
        log.warning("%s: no patient_id column; each image is treated as its own patient", csv_path)
    root = csv_path.parent
    records, problems = [], []
    for line, row in enumerate(rows, start=2):
        path = (row.get("path") or "").strip()
        if not path:
            problems.append(f"line {line}: empty path")
            continue
        label = (row.get("label") or "").strip() or None
        if require_label and label is None:
            problems.append(f"line {line}: empty label for {path}")
        split = (row.get("split") or "").strip() or None
        if split is not None and split not in SPLITS:
            problems.append(f"line {line}: split '{split}' is not one of {SPLITS}")
        resolved = _resolve(root, path)
        records.append(
            Record(
                path=resolved,
                label=label,
                patient_id=(row.get("patient_id") or "").strip() or resolved,
                view=(row.get("view") or "").strip() or None,
                report=(row.get("report") or "").strip() or None,
                mask=_resolve(root, row["mask"].strip()) if (row.get("mask") or "").strip() else None,
                split=split,
                extra={k: (_resolve(root, v.strip()) if k in PATH_COLUMNS and (v or "").strip() else v) for k, v in row.items() if k not in KNOWN_COLUMNS and k is not None},
            )
        )
    if problems:
        raise ManifestError(f"{csv_path}: " + "; ".join(problems[:10]) + (f" (+{len(problems) - 10} more)" if len(problems) > 10 else ""))
    dups = sorted(p for p, n in Counter(r.path for r in records).items() if n > 1)
    if dups:
        raise ManifestError(f"{csv_path}: paths listed more than once: {dups[:5]}")
    if check_files:
        missing = [r.path for r in records if not split_fragment(r.path)[0].is_file()]
        if missing:
            raise ManifestError(f"{csv_path}: {len(missing)} file(s) not found, e.g. {missing[:3]}")
    return records


def write_manifest(records: Iterable[Record], csv_path: str | Path, relative_to: str | Path | None = None) -> Path:
    """Write records as a manifest CSV (paths relative to ``relative_to`` when given)."""
    records = list(records)
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    extra_cols = sorted({k for r in records for k in r.extra})
    base = Path(relative_to).resolve() if relative_to else None
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(KNOWN_COLUMNS) + extra_cols)
        for r in records:
            path, mask = _relative(r.path, base), _relative(r.mask, base) if r.mask else ""
            writer.writerow([path, r.label or "", r.patient_id, r.view or "", r.report or "", mask, r.split or ""] + [_relative(r.extra[k], base) if k in PATH_COLUMNS and r.extra.get(k) else r.extra.get(k, "") for k in extra_cols])
    return csv_path


def manifest_from_npz(npz_path: str | Path, splits: Sequence[str] = SPLITS) -> list[Record]:
    """Records for a MedMNIST-layout ``.npz`` (``<split>_images``/``<split>_labels``).

    The official split is kept in ``split``. MedMNIST has no patient ids, so each
    image is its own patient; exact duplicates are still found by the split step.
    """
    npz_path = Path(npz_path).resolve()
    with np.load(npz_path, allow_pickle=False) as z:
        keys = set(z.files)
        labels = {s: z[f"{s}_labels"] for s in splits if f"{s}_labels" in keys}
    if not labels:
        raise ManifestError(f"{npz_path}: no '<split>_labels' arrays (has {sorted(keys)}); not MedMNIST layout")
    records = []
    for split, lab in labels.items():
        lab = lab.reshape(len(lab), -1)
        for i in range(len(lab)):
            text = str(int(lab[i, 0])) if lab.shape[1] == 1 else ";".join(str(j) for j in np.flatnonzero(lab[i]))
            records.append(Record(path=f"{npz_path}#{split}/{i}", label=text, patient_id=f"{split}-{i}", split=split))
    return records


def manifest_from_folder(folder: str | Path) -> list[Record]:
    """Unlabelled records for every image file under ``folder`` (recursive, sorted).

    A multi-view NM DICOM file gives one record per view (``file.dcm#ant``).
    """
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and (p.suffix.lower() in IMAGE_SUFFIXES))
    records = []
    for p in files:
        views = nm_views(p) if p.suffix.lower() in (".dcm", ".dicom") else []
        if len(views) > 1:  # a multi-view NM file: one record per view, so each view is read on its own
            records += [Record(path=f"{p.resolve()}#{v}", patient_id=str(p.resolve()), view=v) for v in views]
        else:
            records.append(Record(path=str(p.resolve()), patient_id=str(p.resolve()), view=_named_view(views)))
    return records


def _named_view(views: list[str]) -> str | None:
    """The view of a single-view NM file when its header names it (ant/post); None otherwise (frame numbers are no view)."""
    return views[0] if len(views) == 1 and views[0] in ("ant", "post") else None


def load_inputs(source: str | Path) -> list[Record]:
    """Unlabelled records for one image file, a folder, a manifest or a MedMNIST ``.npz`` (what predict/explain/crop take).

    A multi-view NM DICOM file becomes one record per view.
    """
    if "#" in str(source) and not Path(source).exists():  # one view of a DICOM file or one image of an npz
        return [Record(path=str(source), patient_id=str(source).rsplit("#", 1)[0])]
    path = Path(source)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES - {".npz"}:
        views = nm_views(path) if path.suffix.lower() in (".dcm", ".dicom") else []
        if len(views) > 1:
            return [Record(path=f"{path.resolve()}#{v}", patient_id=str(path.resolve()), view=v) for v in views]
        return [Record(path=str(path.resolve()), patient_id=str(path.resolve()), view=_named_view(views))]
    if path.is_file() and path.suffix.lower() not in (".csv", ".npz"):
        return [Record(path=str(path.resolve()), patient_id=str(path.resolve()))]  # unknown suffix: the reader says what it is
    return load_data(source, require_label=False)


def load_data(source: str | Path, require_label: bool = True) -> list[Record]:
    """Records from a manifest CSV, a MedMNIST ``.npz``, or a folder holding either.

    A folder is searched for ``manifest.csv``, then ``labels.csv`` with a
    ``path`` column, then a single ``.npz``; unlabelled folders are read with
    :func:`manifest_from_folder` when ``require_label`` is False.
    """
    source = Path(source)
    if source.is_file():
        return manifest_from_npz(source) if source.suffix == ".npz" else read_manifest(source, require_label)
    if not source.is_dir():
        raise ManifestError(f"{source}: no such file or folder")
    for name in ("manifest.csv", "labels.csv"):
        cand = source / name
        if cand.is_file() and "path" in _header(cand):
            return read_manifest(cand, require_label)
    npz = sorted(source.glob("*.npz"))
    if len(npz) == 1:
        return manifest_from_npz(npz[0])
    if not require_label:
        return manifest_from_folder(source)
    raise ManifestError(f"{source}: no manifest.csv / labels.csv with a 'path' column, and not exactly one .npz")


def encode_labels(records: Sequence[Record], classes: Sequence[str] | None, task) -> tuple[np.ndarray, list[str]]:
    """Turn label texts into a target array and the class names.

    Returns:
        ``(y, classes)``: for ``binary``/``multiclass`` an int array ``(N,)``;
        for ``multilabel`` a 0/1 array ``(N, K)``.
    """
    from ..tasks import get_task

    task = get_task(task)
    texts = [r.label for r in records]
    if any(t is None for t in texts):
        raise ManifestError("some records have no label")
    tokens = [[s.strip() for s in t.split(";") if s.strip()] if task.multilabel else [t.strip()] for t in texts]  # type: ignore[union-attr]
    flat = sorted({s for tok in tokens for s in tok})
    if classes is None:
        if all(s.lstrip("-").isdigit() for s in flat):
            n = max(int(s) for s in flat) + 1 if flat else 2
            classes = [str(i) for i in range(max(n, 2))]
        else:
            classes = flat
    classes = list(classes)
    index = {c: i for i, c in enumerate(classes)}
    index.update({str(i): i for i in range(len(classes))})  # integers always name classes by position
    unknown = sorted({s for s in flat if s not in index})
    if unknown:
        raise ManifestError(f"labels {unknown[:5]} are not among the classes {classes}")
    if task.n_classes is not None and len(classes) != task.n_classes:
        raise ManifestError(f"task '{task.name}' needs {task.n_classes} classes, labels give {classes}")
    if task.multilabel:
        y = np.zeros((len(records), len(classes)), dtype=np.int64)
        for i, tok in enumerate(tokens):
            y[i, [index[s] for s in tok]] = 1
        return y, classes
    return np.array([index[tok[0]] for tok in tokens], dtype=np.int64), classes


def _resolve(root: Path, path: str) -> str:
    whole = Path(path) if Path(path).is_absolute() else root / path
    file, split, idx = split_fragment(path) if "#" in path and not whole.exists() else (Path(path), None, None)
    full = file if file.is_absolute() else (root / file)
    full = full.resolve()
    if split is None:
        return str(full)
    return f"{full}#{split}/{idx}" if idx is not None else f"{full}#{split}"


def _relative(path: str, base: Path | None) -> str:
    if base is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(base)) if "#" not in path or Path(path).exists() else _rel_npz(path, base)
    except ValueError:  # outside the manifest's folder: keep it absolute
        return path


def _rel_npz(path: str, base: Path) -> str:
    file, frag = path.rsplit("#", 1)
    return f"{Path(file).resolve().relative_to(base)}#{frag}"


def _header(csv_path: Path) -> list[str]:
    try:
        return next(csv.reader(io.StringIO(_csv_text(csv_path), newline="")), [])
    except csv.Error as exc:
        raise ManifestError(f"{csv_path}: unreadable CSV header ({exc})") from None


def _csv_text(csv_path: Path) -> str:
    """The CSV's text: UTF-8 (BOM or not) or UTF-16 with its BOM; anything else is a one-line error naming the file."""
    data = csv_path.read_bytes()
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{csv_path}: not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start}; Latin-1 or another encoding?): save it as UTF-8") from None


def manifest_from_dicom(folder: str | Path) -> tuple[list, list[str]]:
    """Unlabelled manifest records for a DICOM folder, plus one-line errors.

    NM files give one record per view (``path = file.dcm#ant``, ``view = ant``),
    so a two-view whole-body scan feeds ``data.views=[ant, post]`` directly;
    other modalities give one record per file. ``patient_id`` comes from the
    header (PatientID, else the study UID).
    """
    files, errors = scan_dicom_folder(folder)
    records = []
    for f in files:
        pid = f.patient_id or f.study_uid or f.path
        extra = {"modality": f.modality, "study_uid": f.study_uid, "series_uid": f.series_uid}
        if f.views:
            records += [Record(path=f"{f.path}#{v}", patient_id=pid, view=v, extra=extra) for v in f.views]
        else:
            records.append(Record(path=f.path, patient_id=pid, extra=extra))
    return records, errors
