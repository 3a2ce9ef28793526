"""`scintix serve` under load on loopback: 100 concurrent predict requests, and the latency of one whole-body scan with Grad-CAM.

    python benchmarks/serve_load.py [--run RUN_DIR ...] [--whole-body] [--requests 100] [--concurrency 100] [--latency-n 50]

``--whole-body`` first makes two full-resolution (1024x256) whole-body
classifiers on SYNTHETIC scans (P2's dSPIC and a ResNet-18, 2 epochs: their
cost, not their accuracy, is measured). For each run: starts the server
(uvicorn, 127.0.0.1, a free port) in a subprocess, then (1) sends ``--requests`` POST /api/predict of pydicom's real NM
whole-body scan (1024x256), all at once from ``--concurrency`` client
threads, and counts errors and latency percentiles; (2) sends
``--latency-n`` sequential POST /api/explain (Grad-CAM) of the same scan,
after 3 warm-up requests: p50/p95 end to end through the API; and (3)
compares the heat maps served (the run's precision, bf16 on CPUs with it)
with float32 ones. Writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from _common import WORK, served, write_result


def make_whole_body_runs(epochs: int = 2) -> list[str]:
    """Two full-resolution (1024x256) single-view whole-body classifiers on SYNTHETIC scans: P2's dSPIC and a ResNet-18.
    Their accuracy is not the point here (a few epochs); their size and the cost of one scan are."""
    from scintix.cli.__main__ import main as cli

    data = WORK / "serve-wb-data"
    if not (data / "manifest.csv").is_file():
        assert cli(["simulate", str(data), "--n", "150", "--seed", "3"]) == 0
    runs = []
    for model in ("dspic", "resnet18"):
        out = WORK / f"serve-wb-{model}"
        if not (out / "eval" / "thresholds.json").is_file():
            assert cli(["run", "--recipe", "p2-wholebody", "--data", str(data), "--out", str(out), "--epochs", str(epochs), "-o", "data.task=binary",
                        "-o", "data.label_column=metastasis", "-o", 'data.classes=["0","1"]', "-o", "data.views=null", "-o", "data.view_filter=ant",
                        "-o", "data.image_size=[1024,256]", "-o", f"model.name={model}", "-o", "eval.n_bootstrap=50", "-o", "train.batch_size=8",
                        "-o", "train.progress=false"]) == 0
        runs.append(str(out))
    return runs


def map_agreement(run_dir: str, scan: str) -> dict:
    """How far heat maps at the run's inference precision (what serve shows) are from float32 ones, on the scan."""
    from scintix.explain.run import explain_arrays
    from scintix.inference.predict import prepare_units
    from scintix.runfolder import load_run

    run = load_run(run_dir)
    _, arrays, _ = prepare_units(run.cfg, scan)
    out = {"precision": str(run.amp).replace("torch.", "") if run.amp else "float32"}
    for method in ("gradcam", "gradcam++"):
        a = explain_arrays(run, arrays, method)[0][0]
        b = explain_arrays(run, arrays, method, amp=True)[0][0]
        out[method] = {"correlation": float(np.corrcoef(a.ravel(), b.ravel())[0, 1]), "max_abs_diff": float(np.abs(a - b).max())}
    return out


def measure(run: str, payload: bytes, requests: int, concurrency: int, latency_n: int) -> dict:
    """Start `scintix serve RUN` on loopback; concurrent /api/predict, then sequential /api/explain (Grad-CAM)."""
    import httpx

    with served(run) as url:
        layout = httpx.get(f"{url}/api/models").json()["models"][0]["memory_layout"]

        client = httpx.Client(timeout=300, limits=httpx.Limits(max_connections=concurrency))  # kept-alive connections, as a browser's

        def post(endpoint: str, data: dict | None = None) -> tuple[int, float]:
            t = time.perf_counter()
            r = client.post(f"{url}{endpoint}", files={"file": ("scan.dcm", payload, "application/dicom")}, data=data or {})
            return r.status_code, time.perf_counter() - t

        start = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            out = list(pool.map(lambda _: post("/api/predict"), range(requests)))
        wall = time.perf_counter() - start
        lat = np.array([s for _, s in out]) * 1000
        codes = [c for c, _ in out]
        load = {"requests": requests, "concurrency": concurrency, "ok": codes.count(200), "errors": len(codes) - codes.count(200), "wall_s": round(wall, 2),
                "requests_per_s": requests / wall, "latency_ms": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)), "max": float(lat.max())}}
        print(run, "load", load, flush=True)
        for _ in range(3):
            post("/api/explain", {"method": "gradcam"})
        seq = [post("/api/explain", {"method": "gradcam"}) for _ in range(latency_n)]
        lat = np.array([s for _, s in seq]) * 1000
        latency = {"n": latency_n, "ok": sum(c == 200 for c, _ in seq), "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)), "target_p50_ms": 150}
        print(run, "latency", latency, flush=True)
        client.close()
    from scintix.runfolder import load_run_config

    cfg = load_run_config(run)
    return {"run": run, "model": cfg.model.name, "model_input": list(cfg.data.image_size), "region": cfg.data.region, "memory_layout": layout,
            "concurrent_predict": load, "explain_gradcam_sequential": latency}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", action="append", default=[], help="a run folder to serve (repeatable)")
    ap.add_argument("--whole-body", action="store_true", help="also make and serve two full-resolution whole-body models (SYNTHETIC training data)")
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--latency-n", type=int, default=50)
    a = ap.parse_args()
    import pydicom

    scan = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "JPEG2000.dcm")
    payload = open(scan, "rb").read()
    runs = list(a.run) + (make_whole_body_runs() if a.whole_body else [])
    if not runs:
        raise SystemExit("name at least one --run, or --whole-body")
    results = []
    for run in runs:
        res = measure(run, payload, a.requests, a.concurrency, a.latency_n)
        res["heatmap_vs_float32"] = map_agreement(run, scan)
        results.append(res)
    import torch

    write_result("serve_load", {"scan": "pydicom JPEG2000.dcm: real NM whole-body, 1024x256, anterior", "cpu_threads": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                                "command": "python benchmarks/serve_load.py " + " ".join(sys.argv[1:]), "runs": results,
                                "notes": "end to end through the API on loopback (upload, DICOM decode, regions, preprocessing, one forward pass that also "
                                         "makes the Grad-CAM map at the run's precision, two PNGs), model warm; whole-body runs read the scan at "
                                         "1024x256; region runs (p1-thoracic) read the chest crop the server cuts from it"})


if __name__ == "__main__":
    main()
