"""`scintix serve` under load on loopback: 100 concurrent predict requests, and the latency of one whole-body scan with Grad-CAM.

    python benchmarks/serve_load.py --run RUN_DIR [--requests 100] [--concurrency 100] [--latency-n 50]

Starts the server (uvicorn, 127.0.0.1, a free port) in a subprocess with the
run, then (1) sends ``--requests`` POST /api/predict of pydicom's real NM
whole-body scan (1024x256), all at once from ``--concurrency`` client
threads, and counts errors and latency percentiles; (2) sends
``--latency-n`` sequential POST /api/explain (Grad-CAM) of the same scan,
after 3 warm-up requests: p50/p95 end to end through the API. Writes
benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from _common import write_result


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=100)
    ap.add_argument("--latency-n", type=int, default=50)
    a = ap.parse_args()
    import httpx
    import pydicom

    scan = os.path.join(os.path.dirname(pydicom.__file__), "data", "test_files", "JPEG2000.dcm")
    payload = open(scan, "rb").read()
    port = _free_port()
    env = {**os.environ, "SCINTIX_NO_REEXEC": "1"}
    server = subprocess.Popen([sys.executable, "-m", "scintix.cli", "serve", a.run, "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise SystemExit(f"server did not start: {server.stderr.read() if server.poll() is not None else 'no answer'}")

        def post(endpoint: str, data: dict | None = None) -> tuple[int, float]:
            t = time.perf_counter()
            r = httpx.post(f"{url}{endpoint}", files={"file": ("scan.dcm", payload, "application/dicom")}, data=data or {}, timeout=120)
            return r.status_code, time.perf_counter() - t

        start = time.perf_counter()
        with ThreadPoolExecutor(a.concurrency) as pool:
            out = list(pool.map(lambda _: post("/api/predict"), range(a.requests)))
        wall = time.perf_counter() - start
        lat = np.array([s for _, s in out]) * 1000
        codes = [c for c, _ in out]
        load = {"requests": a.requests, "concurrency": a.concurrency, "ok": codes.count(200), "errors": len(codes) - codes.count(200), "wall_s": round(wall, 2),
                "requests_per_s": a.requests / wall, "latency_ms": {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)), "max": float(lat.max())}}
        print("load", load, flush=True)
        for _ in range(3):
            post("/api/explain", {"method": "gradcam"})
        seq = [post("/api/explain", {"method": "gradcam"}) for _ in range(a.latency_n)]
        lat = np.array([s for _, s in seq]) * 1000
        latency = {"n": a.latency_n, "ok": sum(c == 200 for c, _ in seq), "p50_ms": float(np.percentile(lat, 50)), "p95_ms": float(np.percentile(lat, 95)), "target_p50_ms": 150}
        print("latency", latency, flush=True)
    finally:
        server.terminate()
        server.wait(10)
    from scintix.runfolder import load_run_config

    cfg = load_run_config(a.run)
    write_result("serve_load", {"run": a.run, "model": cfg.model.name, "model_input": list(cfg.data.image_size), "scan": "pydicom JPEG2000.dcm: real NM whole-body, 1024x256",
                                "cpu_threads": os.cpu_count(), "concurrent_predict": load, "explain_gradcam_sequential": latency,
                                "caveat": "the model resizes the scan to its input size; a full-resolution whole-body model would be slower"})


if __name__ == "__main__":
    main()
