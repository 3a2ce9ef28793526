"""DICOM outputs for one source scan, written with highdicom: an overlay Secondary Capture, a lesion SEG, a finding SR.

Every output is a new series in the source's study: new Series and SOP
Instance UIDs, the source study's UID, a reference to the source image, and
the patient module copied from the source, or replaced by ``ANONYMOUS``
(name and ID, birth date, sex, age and other identifying attributes
removed) with ``deidentify``. The Secondary Capture carries a red
"NOT FOR DIAGNOSTIC USE" banner burned into its pixels; the SR and SEG name
the model and say the same in their series description.

The SEG is binary, one segment ("lesion"), frames aligned with the source:
its pixel array must have the source's rows and columns (resize a model's
mask back with :func:`mask_to_source`). highdicom writes SEG for sources with
a frame of reference, or single-frame sources without one; a multi-frame
source without a frame of reference (an NM file holding ANT and POST as two
frames) is refused with a one-line reason.
"""

from __future__ import annotations

import copy
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from .._atomic import atomic_path
from .._optional import require

__all__ = ["write_for_prediction", "Algorithm", "write_overlay_sc", "write_lesion_seg", "write_finding_sr", "mask_to_source", "heatmap_overlay", "output_source", "BANNER", "IDENTIFYING"]

BANNER = "NOT FOR DIAGNOSTIC USE - scintix research output"
IDENTIFYING = ("PatientBirthDate", "PatientSex", "PatientAge", "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientAddress",
               "PatientTelephoneNumbers", "PatientComments", "PatientWeight", "PatientSize", "EthnicGroup", "PatientMotherBirthName", "MilitaryRank",
               "IssuerOfPatientID", "PatientBirthTime", "ReferringPhysicianName", "InstitutionName", "InstitutionAddress", "AccessionNumber")
TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")


@dataclass
class Algorithm:
    """Who made the result: the model's name, the run it came from, scintix's version, and whether it learned from SYNTHETIC data."""

    model: str
    run: str
    synthetic: bool = False
    version: str = __version__

    @property
    def description(self) -> str:
        return f"scintix {self.version} {self.model} ({self.run}){' SYNTHETIC-trained' if self.synthetic else ''}"[:64]


def output_source(source, deidentify: bool):
    """A copy of ``source`` for outputs to inherit patient and study from: type-2 attributes it lacks present and empty, and with
    ``deidentify`` the patient's name and ID replaced by ``ANONYMOUS`` and the other identifying attributes removed or emptied."""
    ds = copy.deepcopy(source)
    if deidentify:
        ds.PatientName, ds.PatientID = "ANONYMOUS^", "ANONYMOUS"
        for tag in IDENTIFYING:
            if tag in ds:
                delattr(ds, tag)
    for tag in TYPE2:
        if tag not in ds:
            setattr(ds, tag, "")
    return ds


def _uids() -> tuple[str, str]:
    from highdicom import UID

    return str(UID()), str(UID())


def _quiet(writer):
    """Silences highdicom's and pydicom's notes on the source's values (a one-part person name, say): not the user's concern here."""

    @functools.wraps(writer)
    def wrapped(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return writer(*args, **kwargs)

    return wrapped


def _save(ds, out: str | Path, deidentify: bool = False) -> Path:
    if deidentify:  # the writers copy the patient module from the source copy, not these
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "scintix: name, ID replaced; identifying data removed"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        ds.save_as(str(tmp), enforce_file_format=True)
    return out


def _banner(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` with a red bar and the banner text burned in across its top."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB")
    h = max(12, img.height // 24)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, img.width, h], fill=(200, 0, 0))
    draw.text((3, max(0, (h - 10) // 2)), BANNER, fill=(255, 255, 255))
    return np.asarray(img)


@_quiet
def write_overlay_sc(source, rgb: np.ndarray, out: str | Path, algorithm: Algorithm, deidentify: bool = False, series_number: int = 9901) -> Path:
    """A Secondary Capture of an overlay (``(H, W, 3)`` uint8), banner burned in, in the source's study."""
    hd = require("highdicom")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{out}: an overlay must be (H, W, 3) RGB, got shape {rgb.shape}")
    src = output_source(source, deidentify)
    series_uid, sop_uid = _uids()
    orientation = _orientation(source)
    sc = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=src, pixel_array=_banner(rgb), photometric_interpretation="RGB", bits_allocated=8, coordinate_system="PATIENT",
        patient_orientation=orientation or ("L", "F"), series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=sop_uid,
        instance_number=1, manufacturer="scintix", transfer_syntax_uid="1.2.840.10008.1.2.1",
    )
    if orientation is None:
        sc.PatientOrientation = ""  # type 2: present and empty when the source does not say (never a guess)
    sc.SeriesDescription = "scintix overlay - NOT FOR DIAGNOSTIC USE"
    sc.BurnedInAnnotation = "YES"
    sc.Laterality = sc.get("Laterality", "")  # type 2C: present, empty when not a paired body part
    sc.ImageComments = f"{BANNER}. {algorithm.description}"
    sc.SourceImageSequence = [_image_reference(source)]
    return _save(sc, out, deidentify)


def _orientation(source) -> tuple[str, str] | None:
    """The source's row and column directions as patient-orientation letters: its PatientOrientation, or read off ImageOrientationPatient."""
    po = source.get("PatientOrientation")
    if po and len(po) == 2 and all(po):
        return str(po[0]), str(po[1])
    iop = source.get("ImageOrientationPatient")
    if not iop or len(iop) != 6:
        return None
    letters = (("R", "L"), ("A", "P"), ("F", "H"))  # negative, positive direction of x, y, z in DICOM patient space

    def letter(v) -> str:
        axis = int(np.argmax(np.abs(v)))
        return letters[axis][int(v[axis] > 0)]

    return letter([float(x) for x in iop[:3]]), letter([float(x) for x in iop[3:]])


def _image_reference(source):
    from pydicom.dataset import Dataset

    ref = Dataset()
    ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID = source.SOPClassUID, source.SOPInstanceUID
    return ref


def mask_to_source(mask: np.ndarray, source, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """A label mask at the model's input size put back on the source's pixel grid (padding removed, nearest neighbour);
    with ``box`` (y0, x0, y1, x1: the region the model read, see :class:`~scintix.data.crop.RegionReader`) it fills that box and
    the rest of the source is background."""
    from ..transforms.functional import unresize_pad_mask

    shape = (int(source.Rows), int(source.Columns))
    if box is None:
        return unresize_pad_mask(np.asarray(mask), shape)
    y0, x0, y1, x1 = box
    out = np.zeros(shape, np.asarray(mask).dtype)
    out[y0:y1, x0:x1] = unresize_pad_mask(np.asarray(mask), (y1 - y0, x1 - x0))
    return out


@_quiet
def write_lesion_seg(source, mask: np.ndarray, out: str | Path, algorithm: Algorithm, deidentify: bool = False, label: str = "lesion", series_number: int = 9902) -> Path:
    """A binary DICOM SEG of ``mask`` (``(Rows, Columns)``, nonzero = lesion) over ``source``."""
    hd = require("highdicom")
    from pydicom.sr.codedict import codes

    mask = np.asarray(mask)
    rows, cols = int(source.Rows), int(source.Columns)
    if mask.shape != (rows, cols):
        raise ValueError(f"{out}: the mask is {mask.shape[0]}x{mask.shape[1]}, the source {rows}x{cols}; resize it with mask_to_source first")
    frames = int(getattr(source, "NumberOfFrames", 1) or 1)
    if frames > 1 and "FrameOfReferenceUID" not in source:
        raise ValueError(f"{out}: the source has {frames} frames and no frame of reference; a DICOM SEG cannot say which frame it covers (write one view per file)")
    src = output_source(source, deidentify)
    series_uid, sop_uid = _uids()
    segment = hd.seg.SegmentDescription(
        segment_number=1, segment_label=label, segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure, segmented_property_type=codes.SCT.Lesion,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=hd.AlgorithmIdentificationSequence(name=f"scintix {algorithm.model}"[:64], version=algorithm.version, family=codes.cid7162.ArtificialIntelligence),
    )
    seg = hd.seg.Segmentation(
        source_images=[src], pixel_array=(mask > 0).astype(np.uint8)[None], segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[segment], series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=sop_uid, instance_number=1,
        manufacturer="scintix", manufacturer_model_name=algorithm.model[:64], software_versions=algorithm.version, device_serial_number=algorithm.run[:64] or "0",
        series_description="scintix lesion SEG - NOT FOR DIAGNOSTIC USE", omit_empty_frames=False,
    )
    seg.ContentDescription = "RESEARCH"[:16]
    return _save(seg, out, deidentify)


@_quiet
def write_finding_sr(source, finding: dict, out: str | Path, algorithm: Algorithm, deidentify: bool = False, series_number: int = 9903) -> Path:
    """A Comprehensive SR: the finding (label), the calibrated probability and threshold, lesion size when given, the model and a disclaimer.

    ``finding``: ``label`` (str), ``probability`` (float, of ``positive_class``), ``threshold`` (float), ``positive_class`` (str),
    optional ``lesion_pixels`` (int).
    """
    hd = require("highdicom")
    from pydicom.sr.codedict import codes

    for key in ("label", "probability", "threshold", "positive_class"):
        if key not in finding:
            raise ValueError(f"{out}: the finding lacks {key!r}")
    if not np.isfinite(finding["probability"]):
        raise ValueError(f"{out}: the probability is not a finite number; no report written")
    src = output_source(source, deidentify)
    contains = hd.sr.RelationshipTypeValues.CONTAINS
    probability = hd.sr.CodedConcept("P-SCX-1", "99SCINTIX", f"Probability of {finding['positive_class']}"[:64])
    threshold = hd.sr.CodedConcept("P-SCX-2", "99SCINTIX", "Decision threshold (validation)")
    no_units = hd.sr.CodedConcept("1", "UCUM", "no units")
    items = [
        hd.sr.TextContentItem(name=codes.DCM.Finding, value=str(finding["label"]) or "no label", relationship_type=contains),
        hd.sr.NumContentItem(name=probability, value=float(finding["probability"]), unit=no_units, relationship_type=contains),
        hd.sr.NumContentItem(name=threshold, value=float(finding["threshold"]), unit=no_units, relationship_type=contains),
    ]
    if finding.get("lesion_pixels") is not None:
        items.append(hd.sr.NumContentItem(name=hd.sr.CodedConcept("P-SCX-3", "99SCINTIX", "Lesion area (pixels)"), value=int(finding["lesion_pixels"]),
                                          unit=hd.sr.CodedConcept("{pixels}", "UCUM", "pixels"), relationship_type=contains))
    items += [
        hd.sr.TextContentItem(name=codes.DCM.AlgorithmName, value=f"scintix {algorithm.model} ({algorithm.run})"[:1024], relationship_type=contains),
        hd.sr.TextContentItem(name=codes.DCM.AlgorithmVersion, value=algorithm.version, relationship_type=contains),
        hd.sr.TextContentItem(name=codes.DCM.Comment, value=BANNER + (". The model was trained on SYNTHETIC data." if algorithm.synthetic else "."), relationship_type=contains),
        hd.sr.ImageContentItem(name=codes.DCM.SourceImageForSegmentation if finding.get("lesion_pixels") is not None else hd.sr.CodedConcept("121112", "DCM", "Source of Measurement"),
                               referenced_sop_class_uid=source.SOPClassUID, referenced_sop_instance_uid=source.SOPInstanceUID, relationship_type=contains),
    ]
    root = hd.sr.ContainerContentItem(name=codes.LN.DiagnosticImagingReport, template_id=None)
    root.ContentSequence = items
    series_uid, sop_uid = _uids()
    sr = hd.sr.ComprehensiveSR(evidence=[src], content=root, series_instance_uid=series_uid, series_number=series_number, sop_instance_uid=sop_uid,
                               instance_number=1, manufacturer="scintix", is_complete=True, is_final=False, is_verified=False)
    sr.SeriesDescription = "scintix finding - NOT FOR DIAGNOSTIC USE"
    return _save(sr, out, deidentify)


def write_for_prediction(run, key: str, image: np.ndarray, probs: np.ndarray, row: dict, out_dir: str | Path, stem: str, deidentify: bool = False,
                         heatmap: np.ndarray | None = None, box: tuple[int, int, int, int] | None = None) -> list[str]:
    """The DICOM outputs of one prediction whose input is one DICOM file: the finding SR; for segmentation runs the lesion SEG and
    an overlay Secondary Capture; for classification with ``heatmap`` (a [0, 1] map at the model's input size) a heat-map Secondary
    Capture. ``box``: the region of the source the model read (whole-body scans cropped for a region model), where the SEG goes.
    Returns the files written; raises ValueError (one line) when the input is not DICOM or an output cannot be made.
    """
    from ..data.base import split_fragment
    from ..data.dicom import _dcmread

    file, _, _ = split_fragment(key)
    with open(file, "rb") as fh:
        head = fh.read(132)
    if head[128:132] != b"DICM":
        raise ValueError(f"{key}: not a DICOM file; DICOM outputs need a DICOM source")
    source = _dcmread(file)
    algorithm = Algorithm(run.cfg.model.name, Path(run.run_dir).name, run.synthetic)
    out_dir = Path(out_dir)
    written = []
    positive = run.classes[-1] if len(run.classes) == 2 or run.task.dense else run.classes[int(np.argmax(probs))]  # binary: the positive class; else the likeliest
    if run.task.dense:
        thresholds = run.thresholds_for(row.get("report"))  # a report-guided run given no report: its no-report threshold
        label = run.task.masks(probs[None], thresholds, run.classes)[0]
        finding = {"label": "lesion" if row["lesion_pixels"] else "no lesion", "probability": row["max_lesion_prob"], "threshold": float(thresholds.get(positive, 0.5)),
                   "positive_class": f"{positive} (highest pixel)", "lesion_pixels": row["lesion_pixels"]}
        written.append(str(write_overlay_sc(source, _mask_overlay(image[0], label), out_dir / f"{stem}_overlay_sc.dcm", algorithm, deidentify)))
        written.append(str(write_lesion_seg(source, mask_to_source(label, source, box), out_dir / f"{stem}_seg.dcm", algorithm, deidentify)))
    else:
        finding = {"label": row["predicted"], "probability": row[f"prob_{positive}"], "threshold": float(run.thresholds.get(positive, 0.5)), "positive_class": positive}
        if heatmap is not None:
            written.append(str(write_overlay_sc(source, heatmap_overlay(image[0], heatmap), out_dir / f"{stem}_heatmap_sc.dcm", algorithm, deidentify)))
    written.insert(0, str(write_finding_sr(source, finding, out_dir / f"{stem}_sr.dcm", algorithm, deidentify)))
    return written


def heatmap_overlay(image: np.ndarray, cam: np.ndarray, alpha: float = 0.4) -> np.ndarray:
    """The model's input image in grey under a [0, 1] heat map in jet colours: ``(H, W, 3)`` uint8."""
    from ..transforms.functional import heatmap_rgba, to_uint8

    grey = np.repeat(to_uint8(image)[..., None].astype(np.float32), 3, axis=2)
    colour = heatmap_rgba(cam)[..., :3].astype(np.float32)
    a = alpha * np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float32)), 0, 1)[..., None]  # cold areas stay grey
    return np.clip((1 - a) * grey + a * colour, 0, 255).astype(np.uint8)


def _mask_overlay(image: np.ndarray, label: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The model's input image in grey with lesion pixels tinted red: ``(H, W, 3)`` uint8."""
    from ..transforms.functional import to_uint8

    rgb = np.repeat(to_uint8(image)[..., None].astype(np.float32), 3, axis=2)
    hit = np.asarray(label) > 0
    rgb[hit] = (1 - alpha) * rgb[hit] + alpha * np.array([255.0, 0.0, 0.0])
    return np.clip(rgb, 0, 255).astype(np.uint8)
