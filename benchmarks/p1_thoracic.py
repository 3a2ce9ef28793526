"""P1 on real data: BS-80K right-chest crops, anterior, posterior and a two-view patient model.

    python benchmarks/p1_thoracic.py [--epochs N] [--only ant|post|both]

Writes benchmarks/results/p1_thoracic.json (val and test metrics with 95%
patient-level bootstrap CIs, threshold chosen on val). A quarter of the
BS-80K patients is held out elsewhere: these numbers are not the final word.
"""

from __future__ import annotations

import argparse
import shutil
import time

from _common import (
    SHARED,
    WORK,
    reexec_with_allocator_tuning,
    require,
    summarize_run,
    write_result,
)

VARIANTS = {
    "ant": ["data.view_filter=ant"],
    "post": ["data.view_filter=post"],
    "both": ["data.view_filter=null", "data.views=[ant,post]"],
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--only", choices=sorted(VARIANTS), action="append")
    a = ap.parse_args()
    data = require(SHARED / "bs80k-chest-region")
    from scintix.config import load_config
    from scintix.training.run import train_run

    results = {}
    for name in a.only or list(VARIANTS):
        overrides = [f"data.source={data}", "train.progress=false", *VARIANTS[name]]
        if a.epochs:
            overrides.append(f"train.epochs={a.epochs}")
        cfg = load_config("p1-thoracic", overrides)
        run_dir = WORK / f"p1-{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        train_run(cfg, run_dir)
        results[name] = {"overrides": overrides, "wall_seconds": round(time.perf_counter() - start, 1), **summarize_run(run_dir)}
        write_result("p1_thoracic", {"data": "BS-80K right-chest crops (../shared/data/bs80k-chest-region), 2195 patients; 1/4 of patients held out elsewhere", "runs": results})
        print(name, {s: results[name][s]["per_class"]["abnormal"]["roc_auc"] for s in ("val", "test")})


if __name__ == "__main__":
    reexec_with_allocator_tuning()
    main()
