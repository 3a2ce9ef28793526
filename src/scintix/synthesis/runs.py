"""Run-folder conventions shared by the GAN and SR loops: start or resume, history."""

from __future__ import annotations

import csv
from pathlib import Path

import yaml

from .._atomic import atomic_path
from ..config import RunConfig, config_to_dict
from ..training.seed import seed_everything

__all__ = ["open_run", "restore", "write_history"]


def open_run(cfg: RunConfig | None, run_dir: Path, resume: bool, what: str) -> RunConfig:
    """The config to use: ``cfg`` for a new run (written to ``config.yaml``), the saved one on resume; seeds everything."""
    last = run_dir / "checkpoints" / "last.pt"
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"{run_dir}: nothing to resume (no checkpoints/last.pt)")
        from ..runfolder import load_run_config

        cfg = load_run_config(run_dir)
    elif last.exists():
        raise FileExistsError(f"{run_dir} already holds a {what} run; use --resume to continue it or pick another --out")
    if cfg is None:
        raise ValueError("a config is needed to start a run")
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(cfg.train.seed, cfg.train.deterministic)
    if not resume:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config_to_dict(cfg), sort_keys=False))
    return cfg


def write_history(path: Path, history: list[dict]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(history[0]))
        w.writeheader()
        w.writerows(history)


def restore(path: Path, **parts) -> dict:
    """Load ``checkpoints/last.pt``: each named part (``model=gen, opt_g=opt, ...``) gets its state, the random state is restored; returns the checkpoint."""
    import torch

    from ..checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    for key, obj in parts.items():
        obj.load_state_dict(ck[key])
    torch.set_rng_state(ck["rng"])
    return ck
