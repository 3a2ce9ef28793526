"""Training in stages (P3's two-stage cross-training): one run per stage, each starting from the previous one.

A recipe's ``stages`` list names each stage and the settings it changes
(``set``: dotted keys, as ``-o`` takes them). Stage 1 makes the patient split;
every later stage reuses it (``data.split.file``) and starts from the previous
stage's best checkpoint (``model.weights``), so validation and test patients
are the same throughout and the stages can be compared. Folders:
``OUT/stage1-<name>/``, ``OUT/stage2-<name>/``, ... and ``OUT/stages.json``
(each stage's settings and test metrics). The last stage is the model to use.
Finished stages are skipped, an interrupted one is resumed; a stage folder made with other settings (another
recipe, epochs, learning rate, data) is refused, naming what differs, so a rerun never reports an old stage as new.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping

from ..config import RunConfig, _build, config_to_dict
from ..runfolder import refuse_other_settings

__all__ = ["with_settings", "run_stages", "stage_dirs"]

log = logging.getLogger(__name__)


def with_settings(cfg: RunConfig, settings: Mapping[str, Any]) -> RunConfig:
    """``cfg`` with dotted keys replaced (``{"train.lr": 1e-4}``), validated like a recipe."""
    raw = config_to_dict(cfg)
    for key, value in settings.items():
        node = raw
        *parents, leaf = str(key).split(".")
        for p in parents:
            if not isinstance(node.get(p), dict):
                raise ValueError(f"stage setting {key!r}: {p!r} is not a config section")
            node = node[p]
        node[leaf] = value
    return _build(RunConfig, raw, "")


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-") or "stage"


def stage_dirs(cfg: RunConfig, out: str | Path) -> list[Path]:
    return [Path(out) / f"stage{i + 1}-{_slug(str(st.get('name', i + 1)))}" for i, st in enumerate(cfg.stages)]


def run_stages(cfg: RunConfig, out: str | Path) -> list[Path]:
    """Train every stage of ``cfg.stages`` in turn; returns their run folders (the last one is the final model)."""
    from .run import train_run

    out = Path(out)
    if not cfg.stages:
        raise ValueError("the config has no stages")
    for i, st in enumerate(cfg.stages):
        if not isinstance(st, dict) or not isinstance(st.get("set", {}), dict) or set(st) - {"name", "set"}:
            raise ValueError(f"stages[{i}]: a mapping with 'name' and 'set' (dotted keys -> values), got {st!r}"[:300])
    base = with_settings(cfg, {"stages": []})
    dirs = stage_dirs(cfg, out)
    summary = []
    for i, (st, run_dir) in enumerate(zip(cfg.stages, dirs)):
        settings = dict(st.get("set", {}))
        if i > 0:  # the same patients, and the previous stage's weights
            settings.setdefault("model.weights", str((dirs[i - 1] / "checkpoints" / "best.pt").resolve()))
            settings.setdefault("data.split.file", str((dirs[0] / "split.csv").resolve()))
        scfg = with_settings(base, settings)
        refuse_other_settings(run_dir, scfg, f"stage {i + 1}")
        if (run_dir / "eval" / "test" / "metrics.json").is_file():
            log.info("stage %d (%s) already finished: %s", i + 1, st.get("name"), run_dir)
        else:
            resume = (run_dir / "checkpoints" / "last.pt").is_file()
            log.info("stage %d/%d (%s) -> %s%s", i + 1, len(dirs), st.get("name"), run_dir, " (resumed)" if resume else "")
            train_run(None if resume else scfg, run_dir, resume=resume)
        test = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text()) if (run_dir / "eval" / "test" / "metrics.json").is_file() else None
        summary.append({"stage": i + 1, "name": st.get("name"), "run_dir": str(run_dir), "settings": settings, "test": test})
        (out / "stages.json").write_text(json.dumps(summary, indent=2, default=str))
    return dirs
