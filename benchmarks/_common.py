"""Helpers shared by the benchmark scripts (not part of the package or the tests)."""

from __future__ import annotations

import contextlib
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
    from scintix.runtime import allocator_env

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


def train_or_reuse(cfg, run_dir: Path) -> float | None:
    """Train ``cfg`` into ``run_dir`` unless a finished run with the same (parsed) config is there; returns the wall seconds when known."""
    import shutil

    from scintix.runfolder import load_run_config
    from scintix.training.run import train_run

    wall_file = run_dir / "wall_seconds.txt"
    if not ((run_dir / "eval" / "test" / "metrics.json").is_file() and load_run_config(run_dir) == cfg):
        shutil.rmtree(run_dir, ignore_errors=True)
        start = time.perf_counter()
        train_run(cfg, run_dir)
        wall_file.write_text(f"{time.perf_counter() - start:.1f}")
    return float(wall_file.read_text()) if wall_file.is_file() else None


def clear_if_other(run_dir: Path, cfg, *made_from_it: Path, resumable: tuple[str, ...] = ()) -> bool:
    """Remove a work folder whose saved config is not ``cfg`` (and the folders made from it, e.g. a GAN's samples), so a
    rerun with other settings (size, patients, channels) trains afresh instead of reusing it under the same name.

    ``resumable``: dotted fields a rerun may change and still continue the folder (e.g. ``gan.epochs``: a run resumed to
    more, or stopped at fewer, epochs). Returns whether it was removed; a folder without a config is left alone.
    """
    import shutil

    from scintix.config import config_differences
    from scintix.runfolder import load_run_config

    if not (run_dir / "config.yaml").is_file() or not config_differences(load_run_config(run_dir), cfg, ignore=resumable):
        return False
    for d in (run_dir, *made_from_it):
        shutil.rmtree(d, ignore_errors=True)
    return True


def clear_stale_samples(gen_dir: Path, *made_from: Path, rows: int | None = None) -> bool:
    """Remove generated images whose manifest is older than a checkpoint of a run they were sampled from (that run was
    trained on since, e.g. resumed to more epochs) or, with ``rows``, holds another number of images. Returns whether removed."""
    import shutil

    manifest = gen_dir / "manifest.csv"
    if not manifest.is_file():
        return False
    newest = max((f.stat().st_mtime for d in made_from for f in (d / "checkpoints").glob("*.pt")), default=0.0)
    with open(manifest, newline="", encoding="utf-8") as fh:
        n = sum(1 for _ in csv.DictReader(fh))
    if manifest.stat().st_mtime >= newest and (rows is None or n == rows):
        return False
    shutil.rmtree(gen_dir)
    return True


NOT_CODE = ("benchmarks/results", "benchmarks/work")  # what a benchmark writes: changes there leave the code its commit


def invocation() -> dict:
    """The command that is writing a result (this script and its arguments, the thread setting) and the code it ran."""
    import shlex
    import subprocess

    script = Path(sys.argv[0]).resolve()
    script = script.relative_to(ROOT) if script.is_relative_to(ROOT) else script
    threads = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} " if "OMP_NUM_THREADS" in os.environ else ""
    try:
        code = subprocess.run(["git", "-C", str(ROOT), "describe", "--always"], capture_output=True, text=True, timeout=10).stdout.strip() or None
        # "-dirty" only for uncommitted changes to the code: a results file this very run (or another) rewrites is not one
        changed = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no", "--", ".", *(f":(exclude){p}" for p in NOT_CODE)],
                                 capture_output=True, text=True, timeout=10).stdout.strip()
        code = f"{code}-dirty" if code and changed else code
    except (OSError, subprocess.SubprocessError):
        code = None
    return {"command": threads + "python " + " ".join(shlex.quote(str(a)) for a in [script, *sys.argv[1:]]), "code": code}


def earlier_entries(name: str) -> dict:
    """The entries of ``results/<name>.json`` without its envelope (benchmark, written, last_written_by); empty when absent:
    what a script that writes one entry per setting keeps of the others."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return {}
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in ("benchmark", "written", "last_written_by")}


def write_result(name: str, payload: dict) -> Path:
    """``results/<name>.json``: the payload with the benchmark's name, the time, and the command and code that wrote it
    (``last_written_by``: a script that keeps earlier entries of its file records their own commands beside them)."""
    payload = {"benchmark": name, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), **payload, "last_written_by": invocation()}
    return _write_json(RESULTS / f"{name}.json", payload)


def write_progress(name: str, payload: dict) -> Path:
    """A long benchmark's figures so far, in ``work/<name>.progress.json`` beside its run folders, never over its results
    file: an interrupted run leaves the last complete results in place (a rerun reuses its finished runs and writes them)."""
    return _write_json(WORK / f"{name}.progress.json", {"benchmark": name, "written": time.strftime("%Y-%m-%dT%H:%M:%S"), "complete": False, **payload})


def _write_json(path: Path, payload: dict) -> Path:
    text = json.dumps(payload, indent=2, default=float)  # whole before anything is written
    from scintix._atomic import atomic_path

    with atomic_path(path) as tmp:  # a run killed mid-write leaves the previous file, never half of one (atomic_path makes the folder)
        tmp.write_text(text)
    return path


def with_earlier(name: str, out: dict, keep: tuple[str, ...] = ()) -> dict:
    """``out`` (which names its own ``settings``) with what the results file it replaces holds beside it: the entries
    ``keep`` (e.g. probes merged by hand), and, when that file was made with other settings, its whole table under
    ``earlier`` (keyed by its settings, or its command), so a run at another size or patient count adds to the record
    instead of erasing it."""
    path = RESULTS / f"{name}.json"
    if not path.is_file():
        return out
    prev = json.loads(path.read_text())
    earlier = dict(prev.get("earlier", {}))
    if prev.get("settings") != out.get("settings"):
        label = json.dumps(prev["settings"], sort_keys=True) if "settings" in prev else prev.get("command", prev.get("written", "earlier"))
        earlier[label] = {k: v for k, v in prev.items() if k not in ("earlier", *keep)}
    return {**{k: prev[k] for k in keep if k in prev}, **out, **({"earlier": earlier} if earlier else {})}


@contextlib.contextmanager
def served(run: str):
    """`scintix serve RUN` in a subprocess on a free loopback port; yields its URL once /api/health answers, stops it after."""
    import socket
    import subprocess

    import httpx

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "scintix.cli", "serve", run, "--port", str(port)], env={**os.environ, "SCINTIX_NO_REEXEC": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                if httpx.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise SystemExit(f"server did not start: {server.stderr.read() if server.poll() is not None else 'no answer'}")
        yield url
    finally:
        server.terminate()
        server.wait(10)


def _test_rows(run_dir: Path) -> dict[str, dict]:
    import csv

    with open(run_dir / "eval" / "test" / "predictions.csv", newline="") as fh:
        return {r["path"]: r for r in csv.DictReader(fh)}


def arm_difference(arm_dirs: list[Path], base_dirs: list[Path], classes: list[str], n_boot: int = 2000) -> dict:
    """Arm - base on the same test images, per class (binary: the positive class; multi-label: each label).

    ``arm_dirs[i]`` and ``base_dirs[i]`` are the same seed. AUC: of the probabilities averaged over seeds, paired, with a
    patient-level CI; sensitivity at each run's own val-chosen threshold (its ``predicted`` column): per seed and the
    mean over seeds of the per-positive hit difference, with a patient-level CI.
    """
    import numpy as np

    from scintix.evaluation.bootstrap import paired_auc_difference, paired_difference_ci

    arm, base = [_test_rows(d) for d in arm_dirs], [_test_rows(d) for d in base_dirs]
    keys = sorted(set.intersection(*(set(r) for r in arm + base)))
    pids = [base[0][k]["patient_id"] for k in keys]
    out = {}
    for c in classes:
        y = np.array([float(c in base[0][k]["target"].split(";")) for k in keys])
        def probs(runs):
            return np.mean([[float(r[k][f"prob_{c}"]) for k in keys] for r in runs], axis=0)

        def hits(runs):  # per seed, 1 where a positive image was called positive
            return np.array([[float(c in r[k]["predicted"].split(";")) for k in keys] for r in runs])[:, y == 1]

        pos_pids = [p for p, v in zip(pids, y) if v == 1]
        ha, hb = hits(arm), hits(base)
        out[c] = {"positives": int(y.sum()), "images": len(keys),
                  "auc_of_seed_averaged_scores": paired_auc_difference(y, probs(arm), probs(base), pids, n_boot),
                  "sensitivity_per_seed": [float(a.mean() - b.mean()) for a, b in zip(ha, hb)],
                  "sensitivity_mean_over_seeds": paired_difference_ci(ha.mean(0), hb.mean(0), pos_pids, n_boot)}
    return out
