"""Segmentation metrics as pure functions of binary masks ``(H, W)`` (numpy, 0/1 or bool).

Empty masks are handled explicitly, never silently dropped:

* Dice and IoU are NaN when the truth is empty (undefined: there is nothing to
  overlap), whatever the prediction; a lesion-free scan is scored instead by
  whether anything was predicted on it (``false_positive_scan``), so the mean
  Dice over lesion scans and the false-positive rate over lesion-free scans are
  reported side by side. MONAI's ``DiceMetric(ignore_empty=True)`` drops these
  scans without saying so.
* HD95 (MONAI's ``compute_hausdorff_distance``, 95th percentile, symmetric) is
  NaN when either mask is empty.
* Lesions are 8-connected components. A true lesion is detected when any
  predicted pixel touches it; a predicted component touching no true lesion
  is a false positive.
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["overlap_counts", "dice", "iou", "hd95", "lesion_detection", "image_metrics", "PER_IMAGE_FIELDS"]

PER_IMAGE_FIELDS = ("dice", "iou", "hd95", "truth_pixels", "pred_pixels", "true_lesions", "detected_lesions", "false_positive_lesions", "false_positive_scan")


def overlap_counts(pred: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` pixel counts."""
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    return int(np.sum(p & t)), int(np.sum(p & ~t)), int(np.sum(~p & t))


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """``2 tp / (2 tp + fp + fn)``; NaN when the truth is empty.

    >>> dice(np.array([[1, 1, 0]]), np.array([[1, 0, 0]]))
    0.6666666666666666
    """
    tp, fp, fn = overlap_counts(pred, truth)
    return float("nan") if tp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """``tp / (tp + fp + fn)``; NaN when the truth is empty."""
    tp, fp, fn = overlap_counts(pred, truth)
    return float("nan") if tp + fn == 0 else tp / (tp + fp + fn)


def hd95(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> float:
    """Symmetric 95th-percentile Hausdorff distance between the mask boundaries (pixels x spacing); NaN if either is empty."""
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    if not p.any() or not t.any():
        return float("nan")
    import torch
    from monai.metrics import compute_hausdorff_distance

    def onehot(m):
        return torch.from_numpy(np.stack([~m, m]).astype(np.float32))[None]

    with warnings.catch_warnings():  # MONAI 1.5 warns about its own internal use of a deprecated argument
        warnings.simplefilter("ignore", FutureWarning)
        return float(compute_hausdorff_distance(onehot(p), onehot(t), include_background=False, percentile=95, spacing=list(spacing)).item())


def lesion_detection(pred: np.ndarray, truth: np.ndarray) -> dict[str, int]:
    """Connected-component detection counts: true lesions, detected ones, false-positive components."""
    from scipy import ndimage

    eight = np.ones((3, 3), int)
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    t_lab, n_true = ndimage.label(t, structure=eight)
    p_lab, n_pred = ndimage.label(p, structure=eight)
    detected = len(np.setdiff1d(np.unique(t_lab[p]), [0]))
    touching = np.setdiff1d(np.unique(p_lab[t]), [0])
    return {"true_lesions": int(n_true), "detected_lesions": int(detected), "false_positive_lesions": int(n_pred - len(touching))}


def image_metrics(pred: np.ndarray, truth: np.ndarray, spacing: tuple[float, float] = (1.0, 1.0)) -> dict[str, float]:
    """Every per-image metric of :data:`PER_IMAGE_FIELDS` for one prediction."""
    p, t = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    out: dict[str, float] = {"dice": dice(p, t), "iou": iou(p, t), "hd95": hd95(p, t, spacing), "truth_pixels": int(t.sum()), "pred_pixels": int(p.sum())}
    out.update(lesion_detection(p, t))
    out["false_positive_scan"] = float(p.any()) if not t.any() else float("nan")
    return out
