"""``predict`` throughput on a folder: images/s by batch size, end to end (read, preprocess, model, calibration, rows).

    python benchmarks/predict_speed.py [--run RUN_DIR] [--batches 1 8 32 64]

Uses a run of the default job (ResNet-18, 96x96, ANT+POST stacked) trained by
``benchmarks/speed.py``'s accuracy check, or any run folder given, and the
SYNTHETIC demo crops' manifest as input (400 patients, 800 views). Each batch
size is timed twice in this process; the faster is kept (the first pass also
warms the file cache). Both engines: torch (with the run's autocast) and ONNX
Runtime (the run's checked export, made first by ``export_onnx``; fp32). Also
the model alone, batch 1 and 32: median latency of 30 calls per engine.
Writes benchmarks/results/predict_speed.json.
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
    import numpy as np
    import torch
    from ddp_equivalence import _data

    from scintix.inference.onnx import export_onnx, with_engine
    from scintix.inference.predict import predict_paths
    from scintix.runfolder import in_channels, load_run
    from scintix.runtime import autocast

    source = _data()
    run = load_run(a.run)
    export = export_onnx(a.run)
    print("export", export["parity"], flush=True)
    by_engine = {}
    for engine in ("torch", "onnx"):
        rows = {}
        for b in a.batches:
            best = None
            for _ in range(2):
                t = time.perf_counter()
                out = predict_paths(a.run, source, batch_size=b, engine=engine)
                s = time.perf_counter() - t
                best = s if best is None or s < best else best
            n = sum(1 for r in out if not r.get("error"))
            rows[str(b)] = {"units": n, "views_per_unit": len(run.cfg.data.views or [1]), "seconds": round(best, 2), "units_per_s": n / best}
            print(engine, b, rows[str(b)], flush=True)
        by_engine[engine] = rows
    model_only = {}
    for engine in ("torch", "onnx"):
        r = with_engine(run, engine)
        for b in (1, 32):
            x = torch.rand(b, in_channels(run.cfg), *run.cfg.data.image_size)
            times = []
            for i in range(33):
                t = time.perf_counter()
                with torch.no_grad(), autocast(r.device, r.amp):
                    r.model(x)
                if i >= 3:  # warm-up calls left out
                    times.append(time.perf_counter() - t)
            model_only[f"{engine}_batch{b}_ms"] = round(1000 * float(np.median(times)), 2)
    print(model_only, flush=True)
    write_result("predict_speed", {"run": a.run, "model": run.cfg.model.name, "image_size": list(run.cfg.data.image_size), "device": str(run.device),
                                   "torch_autocast": str(run.amp), "threads": torch.get_num_threads(), "input": "SYNTHETIC demo crops manifest",
                                   "by_engine_and_batch_size": by_engine, "model_only_median_latency": model_only,
                                   "onnx_export": {k: export[k] for k in ("opset", "export_seconds", "parity")}})


if __name__ == "__main__":
    main()
