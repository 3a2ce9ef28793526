"""Helpers shared by the benchmark scripts (not part of the package or the tests)."""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SCINTIX_SHARED_DATA", ROOT.parent / "shared" / "data"))
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "benchmarks" / "work"  # run folders (git-ignored)


def reexec_with_allocator_tuning() -> None:
    """Re-run this script once with the glibc allocator thresholds set (they must precede Python)."""
    from scintix.training.perf import allocator_env

    extra = allocator_env()
    if extra and os.environ.get("SCINTIX_NO_REEXEC") != "1":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **extra, "SCINTIX_NO_REEXEC": "1"})


def require(path: Path) -> Path:
    if not path.exists():
        print(f"skipped: {path} not present")
        sys.exit(0)
    return path


def summarize_run(run_dir: Path) -> dict:
    """Metrics (value + CI) per eval split, the history and the timing of one run folder."""
    out: dict = {"run_dir": str(run_dir.relative_to(ROOT)) if run_dir.is_relative_to(ROOT) else str(run_dir)}
    for split_dir in sorted((run_dir / "eval").iterdir()):
        if split_dir.is_dir():
            out[split_dir.name] = json.loads((split_dir / "metrics.json").read_text())
    out["data_summary"] = json.loads((run_dir / "data_summary.json").read_text())
    out["meta"] = json.loads((run_dir / "meta.json").read_text())
    with open(run_dir / "history.csv") as fh:
        out["history"] = list(csv.DictReader(fh))
    return out


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), **payload}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2, default=float))
    return path
