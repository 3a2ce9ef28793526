"""A classification CV's out-of-fold truth rebuilt from its data, for comparing kept out-of-fold files alone.

An exported out-of-fold file (:func:`~scintix.training.cv_compare.export_oof`)
holds no labels and no patients, so two of them could only be paired beside a
live CV folder. The fold assignment is a pure function of the data and the
split settings (``data.split.seed``, the number of folds, the inner share), so
rebuilding it with the CV's own data preparation gives, for every image key,
its fold, target and patient: the truth both files are then checked against
(same images, same folds) and scored with.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..config import RunConfig
from ..data.prepare import prepare_data
from ..tasks import get_task
from .crossval import fold_config
from .oof import image_keys

__all__ = ["cv_truth"]


def cv_truth(cfg: RunConfig, folds: int = 5, inner_val: float = 0.15) -> dict[str, dict]:
    """``{image key: {"fold", "target", "patient_id"}}`` of every out-of-fold image of a CV of ``cfg`` (its data,
    views and split seed), as the CV's own fold runs would list them; nothing is trained or written outside a temporary folder."""
    if cfg.data.source is None:
        raise ValueError("the out-of-fold truth is rebuilt from the CV's data: give the manifest it was cross-validated on (--data)")
    task = get_task(cfg.data.task)
    if task.dense:
        raise ValueError("segmentation CVs keep per-scan Dice, not probabilities: compare their kept files beside a CV folder")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in range(folds):
            data = prepare_data(fold_config(cfg, folds, f, inner_val), Path(tmp) / f"fold{f}", write=False)
            rows += [(f, s.key, task.describe_target(s.target, data.classes), s.patient_id) for s in data.samples["test"]]
    keys = image_keys([k for _, k, _, _ in rows])
    return {k: {"fold": f, "target": target, "patient_id": pid} for k, (f, _, target, pid) in zip(keys, rows)}
