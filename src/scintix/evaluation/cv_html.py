"""``scintix report CV``: one self-contained HTML page for a cross-validation folder.

It renders what ``scintix cv`` stored and computes nothing new: the protocol,
the pooled out-of-fold metrics with their patient-level CIs, the per-fold
table (how much the folds disagree), for a binary or per-class task the ROC
curves of the pooled out-of-fold probabilities beside each fold's, for a
segmenter the pooled Dice (and a report-guided model's Dice with its own,
no and another patient's report), and a link to each fold run's own report.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import numpy as np

from .html import CSS, _fig_bytes, _fmt, _img

__all__ = ["write_cv_report"]


def _table(head: list[str], rows: list[list[str]]) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def _num(v) -> str:
    return "n/a" if v is None or (isinstance(v, float) and not np.isfinite(v)) else f"{v:.3f}"


def _roc_figure(cv_dir: Path, s: dict) -> bytes | None:
    """Pooled out-of-fold ROC (thick) and each fold's (thin), per class for multi-class / multi-label."""
    from sklearn.metrics import roc_curve

    from .report import _plt

    f = cv_dir / "oof_predictions.csv"
    if not f.is_file():
        return None
    rows = list(csv.DictReader(open(f, newline="", encoding="utf-8")))
    if s.get("task", "binary") == "binary":
        curves = {s["positive_class"]: ([r["target"] == s["positive_class"] for r in rows], [float(r["prob"]) for r in rows])}
    else:
        curves = {c: ([c in r["target"].split(";") for r in rows], [float(r[f"prob_{c}"]) for r in rows]) for c in s.get("classes", [])}
    curves = {c: (np.array(y, bool), np.array(p)) for c, (y, p) in curves.items() if 0 < sum(y) < len(y)}
    if not curves:
        return None
    plt = _plt()
    folds = np.array([int(r["fold"]) for r in rows])
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 4), squeeze=False)
    for ax, (c, (y, p)) in zip(axes[0], curves.items()):
        for k in sorted(set(folds)):
            m = folds == k
            if 0 < y[m].sum() < m.sum():
                fpr, tpr, _ = roc_curve(y[m], p[m])
                ax.plot(fpr, tpr, lw=0.8, alpha=0.6, label=f"fold {k}")
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, lw=2.2, color="black", label="pooled out of fold")
        ax.plot([0, 1], [0, 1], ls=":", color="grey")
        ax.set(xlabel="1 - specificity", ylabel="sensitivity", title=c)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _fig_bytes(fig)


def _classification(cv_dir: Path, s: dict) -> str:
    out = []
    if s.get("task", "binary") == "binary":
        pooled = [("ROC-AUC", s["pooled_oof_auc"])] + [(name, s.get(f"pooled_{key}_at_fold_thresholds")) for name, key in
                                                       (("sensitivity", "sensitivity"), ("specificity", "specificity"), ("accuracy", "accuracy"),
                                                        ("precision", "precision"), ("F1", "f1"))]
        out.append(f"<h2>Pooled out of fold ({html.escape(s['positive_class'])}: {s['positives']} of {s['n']} images)</h2>")
        out.append(_table(["metric", "value [95% CI]"], [[m, _fmt(v)] for m, v in pooled if v]))
        out.append("<p class=muted>Sensitivity and the others at each fold's own threshold (chosen on its inner validation split).</p>")
        out.append("<h2>Folds</h2>")
        out.append(_table(["fold", "images", "positives", "threshold", "ROC-AUC", "PR-AUC"],
                          [[str(f["fold"]), str(f["n"]), str(f["positives"]), _num(f.get("threshold")), _num(f.get("roc_auc")), _num(f.get("pr_auc"))]
                           for f in s["per_fold"]]))
        out.append(f"<p>fold ROC-AUC mean {_num(s['fold_auc_mean'])} ± {_num(s['fold_auc_sd'])} (sd)</p>")
    else:
        out.append(f"<h2>Pooled out of fold, per class ({html.escape(s['task'])})</h2>")
        out.append(_table(["class", "positives", "ROC-AUC", "sensitivity", "specificity"],
                          [[html.escape(c), str(v["positives"]), _fmt(v["pooled_oof_auc"]), _fmt(v["pooled_sensitivity_at_fold_thresholds"]),
                            _fmt(v["pooled_specificity_at_fold_thresholds"])] for c, v in s["per_class"].items()]))
        out.append(f"<p>macro mean of the pooled ROC-AUCs {_num(s['pooled_oof_auc_macro'])}</p><h2>Folds</h2>")
        out.append(_table(["fold", "images", "macro ROC-AUC"], [[str(f["fold"]), str(f["n"]), _num(f["roc_auc"])] for f in s["per_fold"]]))
        out.append(f"<p>fold macro ROC-AUC mean {_num(s['fold_auc_mean'])} ± {_num(s['fold_auc_sd'])} (sd)</p>")
    fig = _roc_figure(cv_dir, s)
    if fig:
        out.append("<h2>ROC curves</h2><div class=figs><figure>" + _img(fig, "ROC curves") + "<figcaption>black: every out-of-fold "
                   "prediction pooled; thin: each fold on its own</figcaption></figure></div>")
    return "".join(out)


def _segmentation(s: dict) -> str:
    out = ["<h2>Pooled out of fold</h2>"]
    out.append(_table(["class", "Dice (scans with a lesion)", "pooled (global) Dice", "lesion sensitivity", "false-positive scan rate"],
                      [[f"{html.escape(c)} ({v['images_with_lesion']} with a lesion, {v['lesion_free_images']} without)", _fmt(v["dice"]), _fmt(v["global_dice"]),
                        _fmt(v["lesion_sensitivity"]), _fmt(v["false_positive_scan_rate"])] for c, v in s["per_class"].items()]))
    if (tc := s.get("text_conditions")):
        out.append("<h2>How much the model relies on the report</h2>")
        out.append(_table(["report given", "Dice"], [[html.escape(k.replace("_", " ")), _fmt(v)] for k, v in tc["dice"].items()]))
        out.append(_table(["paired difference", "Dice"], [[html.escape(k.replace("_", " ")), _fmt(v)] for k, v in tc["differences"].items()]))
    out.append("<h2>Folds</h2>")
    out.append(_table(["fold", "images", *s["classes"]], [[str(f["fold"]), str(f["n"]), *(_num(f["dice"].get(c)) for c in s["classes"])] for f in s["per_fold"]]))
    out.append(f"<p>fold Dice mean {_num(s['fold_dice_mean'])} ± {_num(s['fold_dice_sd'])} (sd)</p>")
    return "".join(out)


def write_cv_report(cv_dir: str | Path) -> Path:
    """``CV/report.html`` from ``cv_summary.json`` (and ``oof_predictions.csv`` for the ROC curves)."""
    cv_dir = Path(cv_dir)
    f = cv_dir / "cv_summary.json"
    if not f.is_file():
        raise FileNotFoundError(f"{cv_dir}: no cv_summary.json (run `scintix cv` to finish it)")
    s = json.loads(f.read_text())
    parts = [f"<h1>Cross-validation: {html.escape(cv_dir.name)}</h1>"]
    if s.get("synthetic"):
        parts.append("<div class=banner>SYNTHETIC DATA: these numbers say nothing about real scans</div>")
    parts.append(f"<p>{s['folds']} folds, {s['n']} images, {s['patients']} patients. {html.escape(s.get('protocol', ''))}. "
                 f"CIs: {html.escape(s.get('ci', ''))}, one training seed (its training noise is not in them).</p>")
    parts.append(_segmentation(s) if s.get("task") == "segmentation" else _classification(cv_dir, s))
    links = [f'<li><a href="{d.name}/report.html">{d.name}</a></li>' if (d / "report.html").is_file() else f"<li>{d.name} (no report: scintix report {d})</li>"
             for d in sorted(cv_dir.glob("fold*"), key=lambda d: int(d.name[4:]) if d.name[4:].isdigit() else -1) if d.is_dir() and d.name[4:].isdigit()]
    parts.append("<h2>Fold runs</h2><ul>" + "".join(links) + "</ul>")
    out = cv_dir / "report.html"
    out.write_text(f"<!doctype html><html><head><meta charset=utf-8><title>scintix cv {html.escape(cv_dir.name)}</title><style>{CSS}</style></head>"
                   f"<body>{''.join(parts)}</body></html>", encoding="utf-8")
    return out
