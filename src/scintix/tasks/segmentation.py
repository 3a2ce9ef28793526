"""Segmentation: one label per pixel; class 0 is background (binary lesion masks: ``[background, lesion]``).

Loss: MONAI ``DiceCELoss`` (softmax, Dice on the foreground only, batch Dice so
that lesion-free scans in a batch do not produce a degenerate per-image Dice)
plus cross-entropy. Probabilities are a softmax per pixel. A binary run turns
the lesion probability into a mask with a threshold chosen on validation to
maximise the pooled (global) Dice over all validation scans, so false
positives on lesion-free scans count against it; runs with several foreground
classes take the arg-max. Evaluation: see :mod:`scintix.evaluation.segmentation`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..evaluation.bootstrap import bootstrap_ratio_ci
from ..evaluation.segmentation import PER_IMAGE_FIELDS, dice, image_metrics
from .base import Task

__all__ = ["SegmentationTask", "SEG_TABLE_METRICS"]

SEG_TABLE_METRICS = ("dice", "iou", "global_dice", "hd95", "lesion_sensitivity", "false_positive_lesions_per_image", "false_positive_scan_rate")
THRESHOLD_GRID = np.round(np.arange(0.05, 0.96, 0.05), 2)


class SegmentationTask(Task):
    name = "segmentation"
    target_key = "mask"
    dense = True
    select_metrics = ("dice", "loss")

    def criterion(self, class_weights=None, label_smoothing: float = 0.0, focal_gamma: float = 0.0) -> nn.Module:
        from monai.losses import DiceCELoss

        if focal_gamma:
            raise ValueError(f"train.focal_gamma={focal_gamma}: for classification; segmentation trains on Dice + cross-entropy")
        return _MaybeDeepSupervised(DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, batch=True, label_smoothing=label_smoothing))

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def encode_target(self, target: torch.Tensor) -> torch.Tensor:
        return target.long()  # (B, 1, H, W) class indices, as DiceCELoss(to_onehot_y=True) wants

    def class_weights(self, targets, k):
        return None  # Dice is insensitive to the foreground fraction; CE stays unweighted

    def columns(self, k: int) -> list[int]:
        return list(range(1, k))

    def group_stratum(self, targets) -> str:
        return str(int(np.asarray(targets).max()))  # a patient with any lesion scan

    def describe_target(self, target, classes) -> str:
        return "lesion" if int(np.asarray(target).max()) else "no lesion"

    def sampler_key(self, targets):
        return np.asarray(targets).astype(int).ravel()  # scans with / without a lesion

    # --- masks and thresholds -----------------------------------------------------------------
    def masks(self, probs: np.ndarray, thresholds: dict[str, float] | Sequence[dict[str, float]], classes: Sequence[str]) -> np.ndarray:
        """Label maps ``(N, H, W)`` from probabilities ``(N, K, H, W)``; ``thresholds``: one dict for every image, or one per
        image (a report-guided model cuts a scan without a report at its own threshold)."""
        probs = np.asarray(probs)
        if probs.shape[1] == 2:
            if isinstance(thresholds, dict):
                cut = thresholds[classes[1]]
            else:
                cut = np.array([t[classes[1]] for t in thresholds], dtype=probs.dtype).reshape(-1, *([1] * (probs.ndim - 2)))
            return (probs[:, 1] >= cut).astype(np.uint8)
        return probs.argmax(1).astype(np.uint8)

    def choose_thresholds(self, probs: np.ndarray, masks: np.ndarray, classes: Sequence[str], cfg) -> dict[str, float]:
        """Binary: the grid threshold with the best pooled Dice on validation; otherwise arg-max (0.5 recorded)."""
        if probs.shape[1] != 2:
            return {c: 0.5 for c in classes[1:]}
        if cfg.threshold == "fixed":
            return {classes[1]: float(cfg.fixed_threshold)}
        p, t = np.asarray(probs)[:, 1], np.asarray(masks).reshape(len(probs), *probs.shape[2:]).astype(bool)
        best, best_dice = 0.5, -1.0
        for thr in THRESHOLD_GRID:
            pred = p >= thr
            tp, fp, fn = np.sum(pred & t), np.sum(pred & ~t), np.sum(~pred & t)
            d = 2 * tp / max(2 * tp + fp + fn, 1)
            if d > best_dice + 1e-12:
                best, best_dice = float(thr), float(d)
        return {classes[1]: best}

    def score(self, probs: np.ndarray, masks: np.ndarray, metric: str) -> float:
        """Selection while training: mean Dice at 0.5 (arg-max) over scans with a lesion."""
        classes = [str(i) for i in range(probs.shape[1])]
        pred = self.masks(probs, {c: 0.5 for c in classes[1:]}, classes)
        t = np.asarray(masks).reshape(pred.shape)
        vals = [dice(pred[i] == c, t[i] == c) for i in range(len(pred)) for c in self.columns(probs.shape[1])]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    # --- evaluation ---------------------------------------------------------------------------
    def per_image(self, probs, masks, thresholds, classes, spacing=(1.0, 1.0)) -> list[dict]:
        """One row per image and foreground class with every metric of ``PER_IMAGE_FIELDS``."""
        pred = self.masks(probs, thresholds, classes)
        t = np.asarray(masks).reshape(pred.shape)
        return [{"class": classes[c], **image_metrics(pred[i] == c, t[i] == c, spacing)} for i in range(len(pred)) for c in self.columns(len(classes))]

    def evaluate(self, probs, masks, patient_ids, thresholds, classes, cfg, seed: int = 0, rows: list[dict] | None = None) -> dict:
        """Per foreground class: mean Dice/IoU over lesion scans, pooled Dice, HD95, lesion detection,
        false positives on lesion-free scans; patient-level bootstrap CIs."""
        rows = rows if rows is not None else self.per_image(probs, masks, thresholds, classes)
        pids = np.asarray(patient_ids)
        recorded = thresholds
        if not isinstance(thresholds, dict):  # one per image: the distinct ones
            recorded = {"per_image": []}
            for t in thresholds:
                if t not in recorded["per_image"]:
                    recorded["per_image"].append(dict(t))
        out: dict = {"n": int(len(probs)), "patients": int(len(set(patient_ids))), "thresholds": recorded, "per_class": {}}
        for c in self.columns(len(classes)):
            name = classes[c]
            r = [x for x in rows if x["class"] == name]
            col = {f: np.array([x[f] for x in r], dtype=float) for f in PER_IMAGE_FIELDS}
            ci = dict(n_boot=cfg.n_bootstrap, level=cfg.ci_level, seed=seed)
            lesion = col["truth_pixels"] > 0
            pred = self.masks(probs, thresholds, classes) == c
            t = np.asarray(masks).reshape(pred.shape) == c
            tp = np.sum(pred & t, axis=(1, 2)).astype(float)
            fpfn = np.sum(pred ^ t, axis=(1, 2)).astype(float)

            def mean_of(v):
                ok = np.isfinite(v)
                return bootstrap_ratio_ci(np.where(ok, v, 0.0), ok.astype(float), pids, **ci)

            hd = col["hd95"][np.isfinite(col["hd95"])]
            out["per_class"][name] = {
                "dice": mean_of(col["dice"]),
                "iou": mean_of(col["iou"]),
                "global_dice": bootstrap_ratio_ci(2 * tp, 2 * tp + fpfn, pids, **ci),
                "hd95": {**mean_of(col["hd95"]), "median": float(np.median(hd)) if len(hd) else float("nan"), "defined_on": int(len(hd))},
                "lesion_sensitivity": bootstrap_ratio_ci(col["detected_lesions"], col["true_lesions"], pids, **ci),
                "false_positive_lesions_per_image": bootstrap_ratio_ci(col["false_positive_lesions"], np.ones(len(r)), pids, **ci),
                "false_positive_scan_rate": mean_of(col["false_positive_scan"]),
                "images_with_lesion": int(lesion.sum()),
                "lesion_free_images": int((~lesion).sum()),
                "true_lesions": int(col["true_lesions"].sum()),
            }
        return out

    # --- CAMs ---------------------------------------------------------------------------------
    def cam_score(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The target class's logits summed over the pixels predicted as that class (pytorch-grad-cam's SemanticSegmentationTarget)."""
        region = (logits.argmax(1) == targets.view(-1, 1, 1)).float()
        chosen = logits.gather(1, targets.view(-1, 1, 1, 1).expand(-1, 1, *logits.shape[2:])).squeeze(1)
        return (chosen * region).flatten(1).sum(1)

    def cam_probability(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The target class's mean probability over the image (falls as its evidence is removed)."""
        p = self.activation(logits)
        return p.gather(1, targets.view(-1, 1, 1, 1).expand(-1, 1, *p.shape[2:])).flatten(1).mean(1)

    def cam_default_targets(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.ones(len(logits), dtype=torch.long, device=logits.device)

    def nll(self, logits, targets):
        raise NotImplementedError("temperature scaling is not offered for segmentation")


class _MaybeDeepSupervised(nn.Module):
    """The loss on ``(B, K, H, W)`` logits, or MONAI's ``DeepSupervisionLoss`` (weights 1, 1/2, 1/4, ...) on
    a deep-supervised net's ``(B, 1 + heads, K, H, W)`` training output."""

    def __init__(self, loss: nn.Module) -> None:
        super().__init__()
        from monai.losses import DeepSupervisionLoss

        self.loss = loss
        self.deep = DeepSupervisionLoss(loss, weight_mode="exp")

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.deep(list(logits.unbind(1)), target) if logits.ndim == 5 else self.loss(logits, target)
