"""How much a report-guided segmenter relies on the report: the same scans with their report, none, and another patient's.

On each evaluated split the model predicts three times: with the true report,
with no report (the text path is skipped, as in report dropout), and with the
report of a different patient (a seeded shuffle that never gives a scan a
report of its own patient). Mean Dice over the scans with a lesion and pooled
Dice, with patient-level CIs, and the paired per-scan Dice differences with
theirs. Each condition is cut where the model would be cut in use: with a
report (true or another's) at the thresholds chosen on validation with the
true reports, without one at those chosen on validation with every report
withheld (``thresholds_no_report``, what ``predict`` applies to a scan
without a report). A
large drop with another patient's report means the model follows the text
(good when the text is right, a risk when it is wrong).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np
from torch.utils.data import DataLoader, Dataset

from ..evaluation.bootstrap import paired_difference_ci
from ..runfolder import thresholds_for_report
from .loop import predict

__all__ = ["other_patient_reports", "ReportOverride", "predict_without_reports", "in_dataset_order", "cut_by_report", "text_conditions", "format_conditions",
           "CONDITIONS"]

CONDITIONS = ("report", "no_report", "other_patient_report")


def other_patient_reports(texts: Sequence[str], patient_ids: Sequence[str], seed: int = 0) -> list[str]:
    """For each scan, the report of a scan of another patient (a seeded shuffle; ``""`` only when there is one patient)."""
    n = len(texts)
    order = np.random.default_rng(seed).permutation(n)
    out = [""] * n
    for k, i in enumerate(order):
        for step in range(1, n):  # the next scan in the shuffled order that belongs to someone else
            j = order[(k + step) % n]
            if patient_ids[j] != patient_ids[i]:
                out[i] = texts[j]
                break
    return out


class ReportOverride(Dataset):
    """A dataset whose items carry other reports (``texts[i]`` for item ``i``), everything else unchanged."""

    def __init__(self, ds: Dataset, texts: Sequence[str]) -> None:
        self.ds, self.texts = ds, list(texts)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        return {**self.ds[i], "text": self.texts[i]}


def predict_without_reports(model, ds, task, device, amp, batch_size: int) -> np.ndarray:
    """The model's probabilities on ``ds`` with every report withheld (its image path alone), in ``ds`` order."""
    p = predict(model, DataLoader(ReportOverride(ds, [""] * len(ds)), batch_size=batch_size), device, task, amp)
    return in_dataset_order(p["probs"], p["index"])


def in_dataset_order(probs: np.ndarray, index) -> np.ndarray:
    """Predictions made in loader order (``index``: each row's dataset position) put back in dataset order."""
    out = np.empty_like(probs)
    out[index] = probs
    return out


def cut_by_report(texts: Sequence[str | None], thresholds: dict, thresholds_no_report: dict | None) -> dict | list[dict]:
    """Each scan's thresholds as ``predict`` applies them (the no-report ones where a scan has no report); one dict when
    they are the same for every scan."""
    cuts = [thresholds_for_report(t, thresholds, thresholds_no_report) for t in texts]
    return cuts if any(c is not cuts[0] for c in cuts) else (cuts[0] if cuts else thresholds)


def _scores(task, probs, masks, thresholds, classes, pids, cfg, seed) -> tuple[dict, np.ndarray]:
    """The task's own Dice and pooled Dice (with CIs) for the first foreground class, and the per-scan Dice for pairing."""
    rows = task.per_image(probs, masks, thresholds, classes)
    metrics = task.evaluate(probs, masks, pids, thresholds, classes, cfg, seed=seed, rows=rows)["per_class"][classes[1]]
    dice = np.array([r["dice"] for r in rows if r["class"] == classes[1]], dtype=float)
    return {"dice": metrics["dice"], "global_dice": metrics["global_dice"]}, dice


def text_conditions(model, ds, task, thresholds: dict, classes: Sequence[str], device, amp, cfg, batch_size: int, probs: np.ndarray, seed: int = 0,
                    thresholds_no_report: dict | None = None, probs_no_report: np.ndarray | None = None, out_file: str | Path | None = None) -> dict:
    """The three conditions on ``ds`` (``probs``: the predictions with the true reports, in ``ds`` order; ``probs_no_report``,
    when already made, those without any, in ``ds`` order). ``thresholds_no_report`` cut the no-report condition (default
    ``thresholds``). ``out_file``: also each scan's Dice under each condition (``path, patient_id, dice_<condition>``;
    empty where undefined), so cross-validation can pool them over folds."""
    samples = ds.samples
    pids = [s.patient_id for s in samples]
    masks = ds.masks[:, 0]
    texts = [s.text or "" for s in samples]
    alt = {"no_report": [""] * len(samples), "other_patient_report": other_patient_reports(texts, pids, seed)}
    # each scan cut as predict would cut it with the text it is given (a scan without one, in any condition, at the no-report cut)
    cut = {name: cut_by_report(tx, thresholds, thresholds_no_report) for name, tx in (("report", texts), *alt.items())}
    out: dict = {"with_report": int(sum(bool(t) for t in texts)), "n": len(samples), "conditions": {}, "differences": {},
                 "thresholds": {"report": thresholds, "no_report": thresholds_no_report or thresholds}}
    res, dice = {}, {}
    res["report"], dice["report"] = _scores(task, probs, masks, cut["report"], classes, pids, cfg.eval, seed)
    for name, tx in alt.items():
        if name == "no_report" and probs_no_report is not None:
            pr = probs_no_report
        else:
            p = predict(model, DataLoader(ReportOverride(ds, tx), batch_size=batch_size), device, task, amp)
            pr = in_dataset_order(p["probs"], p["index"])
        res[name], dice[name] = _scores(task, pr, masks, cut[name], classes, pids, cfg.eval, seed)
    out["conditions"] = res
    if out_file is not None:
        with open(out_file, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "patient_id", *(f"dice_{k}" for k in dice)])
            for i, sample in enumerate(samples):
                w.writerow([sample.key, sample.patient_id, *("" if not np.isfinite(v[i]) else f"{v[i]:.6f}" for v in dice.values())])
    for name in alt:
        out["differences"][f"report - {name}"] = paired_difference_ci(dice["report"], dice[name], pids, cfg.eval.n_bootstrap, cfg.eval.ci_level, seed)
    return out


def format_conditions(tc: dict) -> str:
    """Lines for the metrics table."""
    def f(v):
        return "n/a" if v["value"] is None or not np.isfinite(v["value"]) else f"{v['value']:.3f} [{v['ci_low']:.3f}, {v['ci_high']:.3f}]"

    lines = [f"  Dice with the report {f(tc['conditions']['report']['dice'])}, without {f(tc['conditions']['no_report']['dice'])}, "
             f"with another patient's {f(tc['conditions']['other_patient_report']['dice'])}"]
    lines += [f"  paired difference {k}: {f(v)}" for k, v in tc["differences"].items()]
    return "\n".join(lines)
