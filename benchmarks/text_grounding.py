"""P4 on simulated bone scans: a report-grounding map, trained on the report alone, late-fused with our U-Net.

For each seed, the continued U-Net of ``text_segmentation.py --warm`` (same data, split and runs) is the image
path. A :class:`~scintix.models.grounding.ReportGrounding` (report encoder + site map in the body's frame) is trained
on the training scans' reports and lesion masks only, its epoch chosen by validation loss; then ``alpha`` and the
threshold of ``sigmoid(U-Net lesion logit + alpha * map)`` are chosen on validation (pooled Dice; ``alpha = 0`` is the
U-Net with its own threshold). Test scans with a lesion: Dice of the fused model vs the U-Net, paired per scan, over
the seeds (patients and seeds resampled), and with another patient's report (a seeded shuffle among the test scans).

Run ``text_segmentation.py --only p4zh --warm --view-prefix --sim-patients N --epochs-p4 E --seeds ...`` first (its
runs are read here, never trained). Writes ``benchmarks/results/text_grounding.json``. SYNTHETIC scans throughout.

    python benchmarks/text_grounding.py --sim-patients 600 --epochs-p4 5 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
from _common import (
    WORK,
    earlier_entries,
    invocation,
    require,
    write_progress,
    write_result,
)


def _scans(run_dir: Path, data: Path):
    """Per split: (paths, model inputs, view-prefixed Chinese reports, masks at the model's size, patient ids)."""
    from scintix.data.manifest import load_inputs
    from scintix.data.masks import read_mask
    from scintix.inference.predict import prepare_units
    from scintix.runfolder import load_run
    from scintix.text.report import model_report
    from scintix.transforms.functional import resize_pad_mask

    run = load_run(run_dir)
    size = tuple(run.cfg.data.image_size)
    with open(run_dir / "split.csv") as fh:
        split = {r["path"]: r["split"] for r in csv.DictReader(fh)}
    with open(data / "manifest.csv") as fh:
        rows = {str((data / r["path"]).resolve()): r for r in csv.DictReader(fh)}
    records = {str(Path(r.path).resolve()): r for r in load_inputs(data / "manifest.csv")}
    out = {}
    for part in ("train", "val", "test"):
        paths = sorted(p for p in split if split[p] == part)
        keys, arrays, errors = prepare_units(run.cfg, [records[str(Path(p).resolve())] for p in paths])
        if errors:
            raise SystemExit(f"{errors[0]['error']}")
        meta = [rows[str(Path(p).resolve())] for p in keys]
        masks = np.stack([np.asarray(resize_pad_mask(read_mask(data / m["mask"]), size)).reshape(size) > 0 for m in meta])
        reports = [model_report(m["report_zh"], m["view"], True) for m in meta]
        out[part] = (keys, np.stack(arrays), reports, masks, [m["patient_id"] for m in meta])
    return run, out


def _unet_logits(run, arrays: np.ndarray) -> np.ndarray:
    import torch

    from scintix.models.grounding import lesion_logit
    from scintix.runtime import autocast

    with torch.no_grad(), autocast(run.device, run.amp):  # as `predict` and the run's own evaluation apply it
        return np.concatenate([lesion_logit(run.model(torch.from_numpy(arrays[i : i + 8]).to(run.device)).float()).cpu().numpy()
                               for i in range(0, len(arrays), 8)])


def _rows(logits: np.ndarray, maps: np.ndarray, alpha: float, threshold: float, masks: np.ndarray) -> list[dict]:
    from scintix.evaluation.segmentation import image_metrics

    pred = 1 / (1 + np.exp(-(logits + alpha * maps))) >= threshold
    return [image_metrics(p, t) for p, t in zip(pred, masks)]


def _summary(rows: list[dict]) -> dict:
    les = [r for r in rows if r["truth_pixels"] > 0]
    return {"dice": float(np.mean([r["dice"] for r in les])), "lesion_sensitivity": float(sum(r["detected_lesions"] for r in les) / max(sum(r["true_lesions"] for r in les), 1)),
            "false_positive_lesions_per_image": float(np.mean([r["false_positive_lesions"] for r in rows])), "scans_with_lesion": len(les), "scans": len(rows)}


def _top_share(maps: np.ndarray, masks: np.ndarray, top: float = 0.01) -> float:
    """Share of test lesions (connected components) whose best map value is in the scan's top ``top`` of pixels."""
    from scipy import ndimage

    hits = []
    for m, t in zip(maps, masks):
        lab, k = ndimage.label(t, np.ones((3, 3)))
        cut = np.quantile(m, 1 - top)
        hits += [bool(m[lab == j].max() >= cut) for j in range(1, k + 1)]
    return float(np.mean(hits)) if hits else float("nan")


def main() -> None:
    import torch

    from scintix.evaluation.bootstrap import mean_difference_over_runs
    from scintix.training.grounding import choose_fusion, fit_grounding

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sim-patients", type=int, default=600)
    ap.add_argument("--epochs-p4", type=int, default=5, help="the text_segmentation.py runs' epochs (recorded; the runs are found by name)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=60, help="grounding epochs at most (early stopping on validation loss)")
    ap.add_argument("--patience", type=int, default=15)
    args = ap.parse_args()

    tag = "" if args.sim_patients == 200 else f"n{args.sim_patients}-"
    data = require(WORK / ("sim-p4-text" if args.sim_patients == 200 else f"sim-p4-text-n{args.sim_patients}"))
    key = f"p4zh_view_{tag.rstrip('-') or 'n200'}"
    out = {**invocation(), "synthetic": True, "data": f"{data.name}: SYNTHETIC whole-body bone scans (scintix simulate), Chinese reports opened by the view",
           "device": f"cpu ({torch.get_num_threads()} threads)", "protocol": __doc__.split("\n\n")[1].replace("\n", " "), "runs": {}}
    fused_scans, unet_scans, other_scans, pids, test_keys = [], [], [], None, None
    for seed in args.seeds:
        run_dir = require(WORK / f"text-seg-{tag}p4zh-warm_unet-s{seed}")
        run, parts = _scans(run_dir, data)
        tr, va, te = parts["train"], parts["val"], parts["test"]
        if test_keys is not None and te[0] != test_keys:
            raise SystemExit(f"{run_dir}: another test split than the first seed's run; the seeds cannot be paired")
        test_keys = te[0]
        fit = fit_grounding(tr[2], torch.from_numpy(tr[1]), torch.from_numpy(tr[3]), va[2], torch.from_numpy(va[1]), torch.from_numpy(va[3]),
                            epochs=args.epochs, patience=args.patience, seed=seed)
        start = time.perf_counter()
        maps = {p: fit.model.maps_for(parts[p][2], torch.from_numpy(parts[p][1])).numpy() for p in ("val", "test")}
        logits = {p: _unet_logits(run, parts[p][1]) for p in ("val", "test")}
        alpha, thr, table = choose_fusion(logits["val"], maps["val"], va[3])
        _, thr0, _ = choose_fusion(logits["val"], maps["val"], va[3], alphas=(0.0,))
        shuffled = np.random.default_rng(seed).permutation(len(te[2]))
        other_maps = fit.model.maps_for([te[2][i] for i in shuffled], torch.from_numpy(te[1])).numpy()
        rows_f, rows_u, rows_o = (_rows(logits["test"], maps["test"], alpha, thr, te[3]), _rows(logits["test"], maps["test"], 0.0, thr0, te[3]),
                                  _rows(logits["test"], other_maps, alpha, thr, te[3]))
        les = [i for i, r in enumerate(rows_u) if r["truth_pixels"] > 0]
        fused_scans.append([rows_f[i]["dice"] for i in les])
        unet_scans.append([rows_u[i]["dice"] for i in les])
        other_scans.append([rows_o[i]["dice"] for i in les])
        pids = [te[4][i] for i in les]
        out["runs"][f"s{seed}"] = {
            "unet_run": str(run_dir), "unet_threshold_val": thr0, "unet_run_thresholds": run.thresholds,
            "grounding": {"best_epoch": fit.best_epoch, "epochs_run": len(fit.history), "train_seconds": fit.seconds, "history": fit.history,
                          "test_lesions_in_top1pct": _top_share(maps["test"], te[3]), "test_lesions_in_top1pct_other_report": _top_share(other_maps, te[3])},
            "alpha": alpha, "threshold": thr, "val_table": table, "fusion_seconds": round(time.perf_counter() - start, 1),
            "test": {"unet": _summary(rows_u), "fused": _summary(rows_f), "fused_other_report": _summary(rows_o)},
            "fused_minus_unet": mean_difference_over_runs([fused_scans[-1]], [unet_scans[-1]], pids, 2000, 0.95, seed),
            "other_report_minus_own": mean_difference_over_runs([other_scans[-1]], [fused_scans[-1]], pids, 2000, 0.95, seed)}
        r = out["runs"][f"s{seed}"]
        print(f"s{seed}: grounding epoch {fit.best_epoch}/{len(fit.history)} ({fit.seconds} s), alpha {alpha}, thr {thr} (U-Net {thr0}); test Dice U-Net "
              f"{r['test']['unet']['dice']:.4f} fused {r['test']['fused']['dice']:.4f} other report {r['test']['fused_other_report']['dice']:.4f}; "
              f"top1% {r['grounding']['test_lesions_in_top1pct']:.3f}", flush=True)
        write_progress("text_grounding", {key: out})
    out["fused_minus_unet_over_seeds"] = mean_difference_over_runs(fused_scans, unet_scans, pids, 2000, 0.95, 0)
    out["other_report_minus_own_over_seeds"] = mean_difference_over_runs(other_scans, fused_scans, pids, 2000, 0.95, 0)
    for name in ("unet", "fused", "fused_other_report"):
        vals = [out["runs"][f"s{s}"]["test"][name]["dice"] for s in args.seeds]
        out[f"{name}_dice_mean_sd"] = [float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else None]
    out["settings"] = {"sim_patients": args.sim_patients, "epochs_p4": args.epochs_p4, "seeds": args.seeds, "epochs": args.epochs, "patience": args.patience}
    print("over seeds: fused - U-Net", out["fused_minus_unet_over_seeds"], flush=True)
    write_result("text_grounding", {**earlier_entries("text_grounding"), key: out})  # other settings' entries stay


if __name__ == "__main__":
    main()
