"""Classification tasks: binary (positive class = index 1), multi-class, multi-label.

Binary and multi-class models output ``K`` logits read with a softmax and are
trained with cross-entropy; multi-label models output one logit per label,
read with a sigmoid and trained with binary cross-entropy. Binary runs
evaluate the positive class (and report the negative class beside it, as P5
does); the others evaluate every class one-vs-rest plus macro means.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..evaluation.bootstrap import bootstrap_ci
from ..evaluation.metrics import binary_metrics
from ..evaluation.threshold import choose_threshold
from .base import Task
from .losses import FocalBCE, FocalCrossEntropy

__all__ = ["ClassificationTask", "BinaryTask", "MulticlassTask", "MultilabelTask", "TABLE_METRICS"]

TABLE_METRICS = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "recall", "specificity", "precision", "f1")


def _nanmean(values) -> float:
    arr = np.asarray(values, dtype=float)
    arr = arr[np.isfinite(arr)]
    return float(arr.mean()) if arr.size else float("nan")


class ClassificationTask(Task):
    """Softmax over ``K`` classes, one class index per sample (binary and multi-class)."""

    select_metrics = ("roc_auc", "pr_auc", "balanced_accuracy", "f1", "accuracy", "loss")

    def criterion(self, class_weights=None, label_smoothing: float = 0.0, focal_gamma: float = 0.0) -> nn.Module:
        if focal_gamma:
            return FocalCrossEntropy(focal_gamma, class_weights, label_smoothing)
        return nn.CrossEntropyLoss(weight=class_weights, label_smoothing=label_smoothing)

    def activation(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=1)

    def encode_target(self, target: torch.Tensor) -> torch.Tensor:
        return target.long()

    def class_weights(self, targets: np.ndarray, k: int) -> torch.Tensor:
        counts = np.bincount(np.asarray(targets).astype(int).ravel(), minlength=k).astype(float)
        return torch.tensor(len(targets) / (k * np.maximum(counts, 1)), dtype=torch.float32)

    def one_hot(self, targets: np.ndarray, k: int) -> np.ndarray:
        """Targets as a 0/1 matrix ``(N, K)``."""
        t = np.asarray(targets).astype(int).ravel()
        out = np.zeros((len(t), k), int)
        out[np.arange(len(t)), t] = 1
        return out

    def group_stratum(self, targets: np.ndarray) -> str:
        from collections import Counter

        return str(Counter(np.asarray(targets).astype(int).ravel().tolist()).most_common(1)[0][0])

    def describe_target(self, target, classes: Sequence[str]) -> str:
        return classes[int(target)]

    def sampler_key(self, targets: np.ndarray) -> np.ndarray:
        """The class each sample counts as when balancing batches."""
        return np.asarray(targets).astype(int).ravel()

    # --- selection, thresholds, evaluation -------------------------------------------------
    def score(self, probs: np.ndarray, targets: np.ndarray, metric: str) -> float:
        """Mean over evaluated columns of a binary metric at 0.5 (what picks the best epoch)."""
        y = self.one_hot(targets, probs.shape[1])
        vals = [binary_metrics(y[:, c], probs[:, c], 0.5)[metric] for c in self.columns(probs.shape[1])]
        vals = [v for v in vals if np.isfinite(v)]
        return float(np.mean(vals)) if vals else float("nan")

    def choose_thresholds(self, probs: np.ndarray, targets: np.ndarray, classes: Sequence[str], cfg) -> dict[str, float]:
        """Per evaluated class, the threshold chosen on these (validation) predictions."""
        y = self.one_hot(targets, probs.shape[1])
        return {classes[c]: choose_threshold(y[:, c], probs[:, c], cfg.threshold, cfg.target_specificity, cfg.fixed_threshold) for c in self.columns(len(classes))}

    def evaluate(self, probs, targets, patient_ids, thresholds: dict[str, float], classes: Sequence[str], cfg, seed: int = 0) -> dict:
        """Metrics with patient-level bootstrap CIs, per evaluated class (+ macro means when several)."""
        y = self.one_hot(targets, probs.shape[1])
        cols = self.columns(len(classes))
        per_class = {classes[c]: bootstrap_ci(y[:, c], probs[:, c], patient_ids, thresholds[classes[c]], cfg.n_bootstrap, cfg.ci_level, seed) for c in cols}
        out: dict = {"n": int(len(probs)), "patients": int(len(set(patient_ids))), "positives": {classes[c]: int(y[:, c].sum()) for c in cols}}
        out["thresholds"] = thresholds
        out["per_class"] = per_class
        if len(per_class) > 1:
            out["macro"] = {m: _nanmean([v[m]["value"] for v in per_class.values()]) for m in TABLE_METRICS}
        out.update(self._extra_metrics(probs, targets, y, patient_ids, thresholds, classes, cfg, seed))
        return out

    def _extra_metrics(self, probs, targets, y, patient_ids, thresholds, classes, cfg, seed) -> dict:
        return {"argmax_accuracy": float(np.mean(np.argmax(probs, 1) == np.asarray(targets).ravel()))} if len(probs) else {}

    def decide(self, p: np.ndarray, thresholds: dict[str, float], classes: Sequence[str]) -> str:
        """The predicted label text for one probability vector."""
        return classes[int(np.argmax(p))]

    def decision_index(self, p: np.ndarray, thresholds: dict[str, float], classes: Sequence[str]) -> int:
        return classes.index(self.decide(p, thresholds, classes))

    # --- calibration and CAMs ----------------------------------------------------------------
    def nll(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets.long().view(-1))

    def confidences(self, probs: np.ndarray, targets: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(confidence, correct) pairs for ECE: the top label here."""
        probs = np.asarray(probs, dtype=np.float64)
        y = np.asarray(targets).reshape(-1)
        return [(probs.max(axis=1), (probs.argmax(axis=1) == y).astype(float))]

    def cam_score(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The scalar per sample a CAM explains: the target's logit."""
        return logits.gather(1, targets.view(-1, 1)).squeeze(1)

    def cam_default_targets(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)

    def cam_probability(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The target's probability per sample (Score-CAM's weights, deletion/insertion curves)."""
        return self.activation(logits).gather(1, targets.view(-1, 1)).squeeze(1)


class MulticlassTask(ClassificationTask):
    name = "multiclass"
    thresholded = False


class BinaryTask(ClassificationTask):
    """Two classes, index 1 positive; evaluated on the positive class, the negative class reported beside it."""

    name = "binary"
    n_classes = 2

    def columns(self, k: int) -> list[int]:
        return [1]

    def decide(self, p, thresholds, classes) -> str:
        return classes[1] if p[1] >= thresholds[classes[1]] else classes[0]

    def group_stratum(self, targets) -> str:
        return str(int(np.asarray(targets).max()))  # a patient with any positive image is a positive patient

    def _extra_metrics(self, probs, targets, y, patient_ids, thresholds, classes, cfg, seed) -> dict:
        out = super()._extra_metrics(probs, targets, y, patient_ids, thresholds, classes, cfg, seed)
        if len(probs):
            # The negative class seen as a class of its own (its precision is the NPV, its recall the
            # specificity), as P5 reports "no finding" beside "finding"; same predictions, same CIs method.
            out["negative_class"] = {classes[0]: bootstrap_ci(1 - y[:, 1], 1 - probs[:, 1], patient_ids, 1 - thresholds[classes[1]], cfg.n_bootstrap, cfg.ci_level, seed)}
        return out

    def cam_score(self, logits, targets):
        # the log-odds of the target class: z1 - z0 for the positive class, its negative for the negative one
        if logits.shape[1] == 2:
            odds = logits[:, 1] - logits[:, 0]
            return torch.where(targets == 1, odds, -odds)
        return super().cam_score(logits, targets)

    def cam_default_targets(self, logits):
        return torch.ones(len(logits), dtype=torch.long, device=logits.device)


class MultilabelTask(ClassificationTask):
    """One sigmoid per label; a sample may carry none, one or several labels."""

    name = "multilabel"
    multilabel = True

    def criterion(self, class_weights=None, label_smoothing: float = 0.0, focal_gamma: float = 0.0) -> nn.Module:
        if focal_gamma:
            return FocalBCE(focal_gamma, class_weights)
        return nn.BCEWithLogitsLoss(pos_weight=class_weights)

    def activation(self, logits):
        return torch.sigmoid(logits)

    def encode_target(self, target):
        return target.float()

    def class_weights(self, targets, k):
        pos = np.asarray(targets).sum(0)
        return torch.tensor((len(targets) - pos) / np.maximum(pos, 1), dtype=torch.float32)

    def one_hot(self, targets, k):
        return np.asarray(targets).astype(int)

    def group_stratum(self, targets):
        return "".join(str(int(v)) for v in np.asarray(targets).max(axis=0))

    def describe_target(self, target, classes):
        return ";".join(classes[i] for i in np.flatnonzero(target))

    def sampler_key(self, targets):
        return np.asarray(targets).argmax(1)

    def _extra_metrics(self, probs, targets, y, patient_ids, thresholds, classes, cfg, seed) -> dict:
        """Sample-based metrics (P2's table) at the validation thresholds, with patient-level CIs."""
        if not len(probs):
            return {}
        from ..evaluation.bootstrap import bootstrap_ratio_ci
        from ..evaluation.metrics import sample_based

        pred = np.stack([probs[:, c] >= thresholds[classes[c]] for c in range(len(classes))], axis=1)
        per = sample_based(y, pred)
        return {"sample_based": {m: bootstrap_ratio_ci(v, np.ones_like(v), patient_ids, cfg.n_bootstrap, cfg.ci_level, seed) for m, v in per.items()}}

    def decide(self, p, thresholds, classes) -> str:
        return ";".join(classes[c] for c in self.columns(len(classes)) if p[c] >= thresholds[classes[c]])

    def decision_index(self, p, thresholds, classes) -> int:
        raise ValueError("a multi-label decision is a set of labels, not one class")

    def nll(self, logits, targets):
        return F.binary_cross_entropy_with_logits(logits, targets.float())

    def confidences(self, probs, targets):
        probs = np.asarray(probs, dtype=np.float64)
        y = np.asarray(targets).reshape(probs.shape)
        return [(probs[:, k], y[:, k].astype(float)) for k in range(probs.shape[1])]
