"""``scintix report RUN``: one self-contained HTML file per evaluated run, and its model card.

Everything is embedded (figures as base64 PNG), so the file can be mailed or
archived alone. Sections: data and split, metrics with CIs, threshold,
ROC/PR/confusion, calibration, explanation faithfulness, a gallery of correct
and wrong test cases with Grad-CAM, training curves, the resolved config and
the model card. It renders stored files and computes nothing: the gallery
and the faithfulness scores come from :mod:`scintix.explain.gallery`
(``eval/explain/``, ``eval/faithfulness.json``), which ``scintix report``
runs first.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
from pathlib import Path

import numpy as np

from .card import write_model_card

__all__ = ["write_report"]

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#1d2330;line-height:1.4}
h1{font-size:22px;margin-bottom:2px} h2{font-size:17px;border-bottom:1px solid #d6dae3;padding-bottom:3px;margin-top:28px}
table{border-collapse:collapse;font-size:13px;margin:8px 0} td,th{border:1px solid #d6dae3;padding:3px 8px;text-align:right}
th{background:#f2f4f8} td:first-child,th:first-child{text-align:left}
.banner{background:#fff3cd;border:1px solid #e0b84c;padding:8px 12px;font-weight:600;margin:10px 0}
.figs{display:flex;flex-wrap:wrap;gap:12px} .figs figure{margin:0} figcaption{font-size:12px;color:#5a6272}
.gallery{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px} .gallery img{width:100%}
.ok{color:#17703a} .bad{color:#b3261e} pre{background:#f6f8fa;padding:10px;font-size:12px;overflow:auto;white-space:pre-wrap}
.muted{color:#5a6272;font-size:13px} .alarm{background:#fde2e0;border-color:#b3261e;color:#7a1610}
"""

METRIC_ROWS = ("roc_auc", "pr_auc", "accuracy", "balanced_accuracy", "recall", "specificity", "precision", "f1")


def _img(png: Path | bytes, alt: str, width: int | None = None) -> str:
    data = png if isinstance(png, bytes) else png.read_bytes()
    w = f' width="{width}"' if width else ""
    return f'<img alt="{html.escape(alt)}"{w} src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _fig_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _fmt(m: dict | None) -> str:
    if not m or m.get("value") is None or (isinstance(m.get("value"), float) and np.isnan(m["value"])):
        return "n/a"
    lo, hi = m.get("ci_low"), m.get("ci_high")
    ci = f" [{lo:.3f}, {hi:.3f}]" if lo is not None and hi is not None else ""
    return f"{m['value']:.3f}{ci}"


def _metrics_table(res: dict) -> str:
    per = dict(res.get("per_class", {}))
    per.update(res.get("negative_class", {}))
    if not per:
        return "<p>no metrics</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in per)
    macro = res.get("macro")
    head += "<th>macro mean</th>" if macro else ""
    rows = []
    for m in METRIC_ROWS:
        cells = "".join(f"<td>{_fmt(per[c].get(m))}</td>" for c in per)
        if macro:
            v = macro.get(m)
            cells += f"<td>{'n/a' if v is None or (isinstance(v, float) and np.isnan(v)) else f'{v:.3f}'}</td>"
        rows.append(f"<tr><td>{m}</td>{cells}</tr>")
    return f"<table><tr><th>metric</th>{head}</tr>{''.join(rows)}</table>"


def _calibration_text(calib: dict | None) -> str:
    if not calib:
        return "uncalibrated"
    if calib.get("summary"):  # runs evaluated since the calibration status was recorded
        return calib["summary"]
    return f"temperature-scaled (T = {calib['temperature']:.3f}, fitted on validation)"


def _selection_text(health: dict) -> str:
    s = health.get("selection") or {}
    if s.get("epoch") is None:
        return ""
    text = f"Checkpoint of epoch {s['epoch']}, selected by validation {s.get('criterion')}"
    if s.get("max_loss_ratio"):
        text += f" among epochs whose val loss was within {s['max_loss_ratio']}x the lowest"
    vals = [f"{k.replace('_', ' ')} {v:.4f}" for k, v in s.items() if k.startswith("val_") and isinstance(v, float)]
    if vals:
        text += f" ({', '.join(vals)})"
    if s.get("precise_bn_batches"):
        text += "; BatchNorm statistics recomputed on training batches drawn as in training, without augmentation"
    gap = (health.get("checks") or {}).get("train_eval_gap")
    if gap is not None:
        text += f"; train-mode vs eval-mode probability gap on {health.get('train_eval_gap_images')} training images: {gap:.3f}"
    return text + "."


def _seg_table(res: dict) -> str:
    from ..tasks.segmentation import SEG_TABLE_METRICS

    per = res.get("per_class", {})
    head = "".join(f"<th>{html.escape(c)}</th>" for c in per)
    rows = "".join(f"<tr><td>{m}</td>" + "".join(f"<td>{_fmt(per[c].get(m))}</td>" for c in per) + "</tr>" for m in SEG_TABLE_METRICS)
    counts = "".join(f"<td>{v.get('images_with_lesion')} / {v.get('lesion_free_images')}</td>" for v in per.values())
    note = ("<p class='muted'>Dice, IoU and HD95 (pixels): mean over scans with a lesion; global Dice: pooled over all scans; "
            "lesion sensitivity and false positives from connected components; false-positive scan rate: share of lesion-free scans "
            "with any predicted lesion (they have no Dice and are reported here instead of being dropped).</p>")
    return f"<table><tr><th>metric</th>{head}</tr>{rows}<tr><td>scans with lesion / lesion-free</td>{counts}</tr></table>{note}"


def _seg_gallery(split_dir: Path) -> str:
    listing = split_dir / "gallery.json"
    if not listing.is_file():
        return ""
    items = json.loads(listing.read_text())
    figs = "".join(
        f"<figure>{_img(split_dir / it['png'], it['kind'])}<figcaption>{html.escape(it['kind'])} · {html.escape(Path(it['path'].split('|')[0]).name)}"
        f"{'<br><span class=muted>report: ' + html.escape(it['report']) + '</span>' if it.get('report') else ''}</figcaption></figure>"
        for it in items if it.get("png") and (split_dir / it["png"]).is_file()
    )
    return f"<p class='muted'>Green contour: true mask; red: prediction at the validation threshold.</p><div class='gallery'>{figs}</div>" if figs else ""


def _text_conditions(res: dict) -> str:
    """A text-guided run: Dice with the scan's report, without one, and with another patient's."""
    tc = res.get("text_conditions")
    if not tc:
        return ""
    names = {"report": "its own report", "no_report": "no report", "other_patient_report": "another patient's report"}
    rows = "".join(f"<tr><td>{names[k]}</td><td>{_fmt(v['dice'])}</td><td>{_fmt(v['global_dice'])}</td></tr>" for k, v in tc["conditions"].items())
    diffs = "".join(f"<tr><td>paired Dice difference: {html.escape(k)}</td><td colspan=2>{_fmt(v)}</td></tr>" for k, v in tc["differences"].items())
    return (f"<h4>How much the model relies on the report</h4><table><tr><th>the scan given</th><th>Dice (lesion scans)</th><th>pooled Dice</th></tr>{rows}{diffs}</table>"
            f"<p class='muted'>Same scans; {_condition_cuts(tc)}; another patient's report is a seeded shuffle.</p>")


def _condition_cuts(tc: dict) -> str:
    """Which threshold cut each condition (runs evaluated before the no-report threshold used the with-report one for all)."""
    cuts = tc.get("thresholds")
    if not cuts or cuts.get("no_report") == cuts.get("report"):
        return "one threshold for all (chosen on validation with the true reports)"

    def show(t: dict) -> str:
        return ", ".join(f"{k} {v:.2f}" for k, v in t.items())

    return (f"with a report cut at {show(cuts['report'])} (chosen on validation with the true reports), without one at "
            f"{show(cuts['no_report'])} (chosen on validation with every report withheld), as <code>predict</code> cuts them")


def _history_figure(run_dir: Path) -> bytes | None:
    path = run_dir / "history.csv"
    if not path.is_file():
        return None
    rows = list(csv.DictReader(open(path)))
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [int(r["epoch"]) for r in rows]
    fig, ax = plt.subplots(1, 2, figsize=(8.5, 3.2), dpi=100)
    for key in ("train_loss", "val_loss"):
        if key in rows[0]:
            ax[0].plot(ep, [float(r[key]) for r in rows], marker=".", label=key)
    ax[0].set(xlabel="epoch", ylabel="loss")
    ax[0].legend(fontsize=8)
    for key, label in (("val_roc_auc", "validation ROC AUC"), ("val_dice", "validation Dice")):
        if key in rows[0]:
            ax[1].plot(ep, [float(r[key]) for r in rows], marker=".", c="tab:green")
            ax[1].set(xlabel="epoch", ylabel=label, ylim=(0, 1.01))
    fig.tight_layout()
    return _fig_bytes(fig)


def _explain_section(run_dir: Path) -> str:
    """Renders what :func:`scintix.explain.gallery.write_explanations` stored; computes nothing."""
    gallery = run_dir / "eval" / "explain" / "gallery.json"
    faith_file = run_dir / "eval" / "faithfulness.json"
    if not gallery.is_file():
        return "<p class='muted'>No stored explanations (`scintix report RUN` computes them before rendering).</p>"
    g = json.loads(gallery.read_text())
    parts = [
        f"<figure>{_img(run_dir / 'eval' / 'explain' / it['png'], 'Grad-CAM')}<figcaption><span class='{'ok' if it['correct'] else 'bad'}'>{'correct' if it['correct'] else 'WRONG'}</span> · "
        f"p[{html.escape(it['explained'])}] = {it['prob']:.2f} · {html.escape(it['name'])}</figcaption></figure>"
        for it in g["cases"] if (run_dir / "eval" / "explain" / it["png"]).is_file()
    ]
    out = f"<p class='muted'>{g['split']} cases, Grad-CAM of the class shown; {g['correct']} correct and {g['wrong']} wrong in all.</p><div class='gallery'>{''.join(parts)}</div>"
    if faith_file.is_file():
        faith = json.loads(faith_file.read_text())
        methods, best = faith["methods"], faith["most_faithful"]
        table = "".join(
            f"<tr><td>{m}{' (best)' if m == best else ''}</td><td>{v['deletion']:.3f}</td><td>{v['insertion']:.3f}</td><td>{v['insertion_minus_deletion'] + 0.0:+.3f}</td></tr>" for m, v in methods.items()
        )
        out += (
            "<h2>Explanation faithfulness</h2>"
            f"<p class='muted'>Deletion: the target probability as the most relevant pixels are blurred away (lower = more faithful). "
            f"Insertion: as they are restored (higher = more faithful). {faith['images']} {faith['split']} images, {faith['steps']} steps. A method that does not beat "
            f"<i>random</i> does not explain this model.</p><table><tr><th>method</th><th>deletion AUC</th><th>insertion AUC</th><th>insertion - deletion</th></tr>{table}</table>"
        )
    return out


def write_report(run_dir: str | Path) -> Path:
    """Write ``RUN/report.html`` (and ``RUN/model_card.md``) from the run's stored results; returns the HTML path."""
    import yaml

    run_dir = Path(run_dir)
    eval_dir = run_dir / "eval"
    if not (eval_dir / "thresholds.json").is_file():
        raise FileNotFoundError(f"{run_dir}: not evaluated yet (no eval/thresholds.json); run `scintix evaluate {run_dir}`")
    meta = json.loads((run_dir / "meta.json").read_text()) if (run_dir / "meta.json").is_file() else {}
    summary = json.loads((run_dir / "data_summary.json").read_text())
    cfg_text = (run_dir / "config.yaml").read_text()
    cfg = yaml.safe_load(cfg_text)
    thresholds = json.loads((eval_dir / "thresholds.json").read_text())
    calib = json.loads((eval_dir / "calibration.json").read_text()) if (eval_dir / "calibration.json").is_file() else None
    synthetic = bool(summary.get("synthetic"))
    splits = [s for s in ("val", "test") if (eval_dir / s / "metrics.json").is_file()]
    results = {s: json.loads((eval_dir / s / "metrics.json").read_text()) for s in splits}

    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>scintix report: {html.escape(run_dir.name)}</title><style>{CSS}</style></head><body>"]
    out.append(f"<h1>scintix report: {html.escape(str(cfg.get('name', run_dir.name)))}</h1><p class='muted'>{html.escape(str(cfg.get('description', '')))}<br>run folder {html.escape(str(run_dir.resolve()))} · model {html.escape(str(cfg['model']['name']))} · task {html.escape(str(cfg['data']['task']))} · scintix {html.escape(str(meta.get('scintix_version', '')))}</p>")
    if synthetic:
        out.append("<div class='banner'>SYNTHETIC DATA: every number and picture here comes from simulated scans and says nothing about real patients.</div>")
    health = json.loads((eval_dir / "health.json").read_text()) if (eval_dir / "health.json").is_file() else {}
    if health.get("degenerate"):
        items = "".join(f"<li>{html.escape(f['message'])}</li>" for f in health["flags"])
        out.append(f"<div class='banner alarm'>MODEL CHECK FAILED: this model looks degenerate; its metrics below do not describe a usable model.<ul>{items}</ul></div>")

    # data and split
    out.append("<h2>Data and split</h2>")
    out.append(f"<p>{summary.get('images')} images of {summary.get('patients')} patients from <code>{html.escape(str(summary.get('source')))}</code>; split: {html.escape(str(summary.get('split_method')))}.</p>")
    classes = summary.get("classes", [])
    rows = "".join(
        f"<tr><td>{s}</td><td>{v.get('samples')}</td><td>{v.get('patients')}</td>" + "".join(f"<td>{v.get('class_counts', {}).get(c, 0)}</td>" for c in classes) + "</tr>"
        for s, v in summary.get("splits", {}).items()
    )
    out.append(f"<table><tr><th>split</th><th>samples</th><th>patients</th>{''.join(f'<th>{html.escape(c)}</th>' for c in classes)}</tr>{rows}</table>")
    dups = summary.get("duplicate_groups", [])
    leak = summary.get("leakage", {})
    out.append(f"<p>Exact-duplicate image groups found: {len(dups)} ({summary.get('duplicate_conflicting_labels', 0)} with conflicting labels). Leakage: {len(leak.get('patients_in_several_splits', []))} patient(s) in several splits, {leak.get('duplicate_images_across_splits', 0)} duplicate image(s) across splits. Unreadable files left out: {len(summary.get('unreadable', []))}.</p>")

    # metrics
    out.append("<h2>Metrics (95% CI, patient-level bootstrap)</h2>")
    th_txt = ", ".join(f"{html.escape(k)}: {v:.4f}" for k, v in thresholds["thresholds"].items())
    out.append(f"<p>Threshold chosen on validation by <b>{html.escape(str(thresholds.get('method')))}</b>{' (target specificity ' + str(thresholds.get('target_specificity')) + ')' if thresholds.get('method') == 'specificity' else ''}: {th_txt}. Probabilities: {html.escape(_calibration_text(calib))}. {html.escape(_selection_text(health))}</p>")
    segmentation = cfg["data"].get("task") == "segmentation"
    for s in splits:
        r = results[s]
        if segmentation:
            out.append(f"<h3>{s}: {r.get('n')} scans, {r.get('patients')} patients</h3>{_seg_table(r)}{_text_conditions(r)}{_seg_gallery(eval_dir / s)}")
            continue
        out.append(f"<h3>{s}: {r.get('n')} samples, {r.get('patients')} patients</h3>{_metrics_table(r)}")
        figs = [(eval_dir / s / f, cap) for f, cap in (("roc.png", "ROC"), ("pr.png", "precision-recall"), ("confusion.png", "confusion matrix"), ("reliability.png", "calibration"))]
        out.append("<div class='figs'>" + "".join(f"<figure>{_img(p, cap, 330)}<figcaption>{cap}, {s}</figcaption></figure>" for p, cap in figs if p.is_file()) + "</div>")
    if calib:
        rows = "".join(f"<tr><td>{s}</td><td>{v['raw']:.4f}</td><td>{v['calibrated']:.4f}</td></tr>" for s, v in calib["ece"].items())
        out.append(f"<h2>Calibration</h2><p>{html.escape(_calibration_text(calib))}. Expected calibration error (15 bins; top-label, per label for multi-label):</p><table><tr><th>split</th><th>ECE raw</th><th>ECE calibrated</th></tr>{rows}</table>")

    # explanations
    if not segmentation:
        out.append("<h2>Cases with heat maps</h2>")
        out.append(_explain_section(run_dir))

    hist = _history_figure(run_dir)
    if hist:
        out.append(f"<h2>Training curves</h2>{_img(hist, 'training curves')}")
    card = write_model_card(run_dir)
    out.append(f"<h2>Model card</h2><pre>{html.escape(card.read_text())}</pre>")
    out.append(f"<h2>Resolved configuration</h2><pre>{html.escape(cfg_text)}</pre>")
    out.append("</body></html>")
    path = run_dir / "report.html"
    path.write_text("\n".join(out), encoding="utf-8")
    return path
