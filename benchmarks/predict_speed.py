"""``predict`` throughput on a folder: images/s by batch size, end to end (read, preprocess, model, calibration, rows).

    python benchmarks/predict_speed.py [--run RUN_DIR] [--batches 1 8 32 64]

Uses a run of the default job (ResNet-18, 96x96, ANT+POST stacked) trained by
``benchmarks/speed.py``'s accuracy check, or any run folder given, and the
SYNTHETIC demo crops' manifest as input (400 patients, 800 views). Each batch
size is timed twice in this process; the faster is kept (the first pass also
warms the file cache). ONNX Runtime is not compared: scintix has no ONNX
export yet. Writes benchmarks/results/predict_speed.json.
"""

from __future__ import annotations

import argparse
import time

from _common import WORK, write_result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(WORK / "speed-acc-batched_aug_fp32"))
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8, 32, 64])
    a = ap.parse_args()
    import torch
    from ddp_equivalence import _data

    from scintix.inference.predict import predict_paths
    from scintix.runfolder import load_run

    source = _data()
    run = load_run(a.run)
    rows = {}
    for b in a.batches:
        best = None
        for _ in range(2):
            t = time.perf_counter()
            out = predict_paths(a.run, source, batch_size=b)
            s = time.perf_counter() - t
            best = s if best is None or s < best else best
        n = sum(1 for r in out if not r.get("error"))
        rows[str(b)] = {"units": n, "views_per_unit": len(run.cfg.data.views or [1]), "seconds": round(best, 2), "units_per_s": n / best}
        print(b, rows[str(b)], flush=True)
    write_result("predict_speed", {"run": a.run, "model": run.cfg.model.name, "image_size": list(run.cfg.data.image_size), "device": str(run.device),
                                   "autocast": str(run.amp), "threads": torch.get_num_threads(), "input": "SYNTHETIC demo crops manifest", "by_batch_size": rows,
                                   "onnx": "not measured: no ONNX export in scintix yet (issue 12)"})


if __name__ == "__main__":
    main()
