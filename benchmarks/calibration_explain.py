"""Calibration and explanations on real data: P1 anterior (BS-80K right-chest crops).

    python benchmarks/calibration_explain.py [--epochs 14] [--reuse]

Trains the p1-thoracic recipe on the anterior view (or reuses
benchmarks/work/p1-ant-calib with --reuse), evaluates it (temperature scaling
fitted on val) and writes the HTML report (Grad-CAM gallery, faithfulness of
every CAM method on 32 test crops). Results -> benchmarks/results/
calibration_explain.json: temperature, ECE raw/calibrated per split, AUC with
CI, deletion/insertion per method. The report itself stays in work/ (it shows
third-party images).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time

from _common import SHARED, WORK, reexec_with_allocator_tuning, require, write_result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=14)
    ap.add_argument("--reuse", action="store_true")
    a = ap.parse_args()
    data = require(SHARED / "bs80k-chest-region")
    from scintix.config import load_config
    from scintix.evaluation.html import write_report
    from scintix.explain.gallery import write_explanations
    from scintix.training.run import train_run

    run_dir = WORK / "p1-ant-calib"
    overrides = [f"data.source={data}", "train.progress=false", "data.view_filter=ant", f"train.epochs={a.epochs}"]
    start = time.perf_counter()
    reused = a.reuse and (run_dir / "eval" / "calibration.json").is_file()
    if not reused:
        shutil.rmtree(run_dir, ignore_errors=True)
        train_run(load_config("p1-thoracic", overrides), run_dir)
    train_s = time.perf_counter() - start
    if reused:  # the training time of the reused run, from its own files: start stamp -> last checkpoint written
        started = time.mktime(time.strptime(json.loads((run_dir / "meta.json").read_text())["started"], "%Y-%m-%dT%H:%M:%S"))
        train_s = (run_dir / "checkpoints" / "last.pt").stat().st_mtime - started
    t = time.perf_counter()
    write_explanations(run_dir, gallery=6, faithfulness_n=32)
    write_report(run_dir)
    report_s = time.perf_counter() - t
    calib = json.loads((run_dir / "eval" / "calibration.json").read_text())
    faith = json.loads((run_dir / "eval" / "faithfulness.json").read_text())
    metrics = {s: json.loads((run_dir / "eval" / s / "metrics.json").read_text())["per_class"]["abnormal"] for s in ("val", "test")}
    res = {
        "data": "BS-80K right-chest crops, anterior view (../shared/data/bs80k-chest-region); 1/4 of patients held out elsewhere",
        "recipe": "p1-thoracic", "overrides": overrides[1:],
        "temperature": calib["temperature"], "ece": calib["ece"],
        "roc_auc": {s: metrics[s]["roc_auc"] for s in metrics},
        "faithfulness": faith,
        "train_seconds": round(train_s, 1), "report_seconds": round(report_s, 1),
        "report": str(run_dir / "report.html"),
    }
    write_result("calibration_explain", res)
    print(json.dumps({k: res[k] for k in ("temperature", "ece", "roc_auc")}, indent=1))
    print({m: round(v["insertion_minus_deletion"], 3) for m, v in faith["methods"].items()})


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
