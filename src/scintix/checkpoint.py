"""Checkpoints: a plain dict, written atomically, loaded with ``weights_only``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from ._atomic import atomic_path

__all__ = ["save_checkpoint", "load_checkpoint", "load_model_state"]


def save_checkpoint(state: dict[str, Any], path: str | Path) -> Path:
    """Write to a temporary file in the same folder, then rename: a killed run never leaves half a file."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return Path(path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint dict, loaded with ``weights_only`` (a pickle that would run code is refused, never run).

    Raises:
        FileNotFoundError: no such file.
        ValueError: one line naming the file: empty, truncated, not a
            checkpoint, or content ``weights_only`` refuses.
    """
    import pickle

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise ValueError(f"{path}: empty checkpoint file")
    with open(path, "rb") as fh:
        head = fh.read(4)
    if head[:2] != b"PK" and head[:1] != b"\x80":  # neither torch's zip format nor a pickle
        raise ValueError(f"{path}: not a readable checkpoint, truncated or damaged (not a torch checkpoint file)")
    try:
        with warnings.catch_warnings():  # torch's notes about a foreign pickle's protocol: our one line says it
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # its text suggests weights_only=False: never repeat that for a file you did not write
        raise ValueError(f"{path}: refused -- not a plain checkpoint (holds objects that weights-only loading does not allow)") from None
    except Exception as exc:  # PytorchStreamReader (truncated zip), EOFError, ...
        first = str(exc).strip().splitlines()
        raise ValueError(f"{path}: not a readable checkpoint, truncated or damaged ({type(exc).__name__}{': ' + first[0][:120] if first else ''})") from None
    if not isinstance(state, dict) or "model" not in state:
        raise ValueError(f"{path}: not a scintix checkpoint (no 'model' entry)")
    return state


def load_model_state(model, state: dict[str, Any], path: str | Path) -> None:
    """Load a checkpoint's weights into ``model``; a mismatch is a one-line error naming the file.

    A mismatch means the checkpoint was made for another model or another
    layout of it (an older scintix, a changed recipe), not a corrupt file.
    """
    missing, unexpected = [], []
    try:
        result = model.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    except RuntimeError as exc:  # shape mismatches
        first = str(exc).strip().splitlines()
        raise ValueError(f"{path}: checkpoint does not fit the model ({first[1].strip() if len(first) > 1 else first[0]})"[:400]) from None
    if missing or unexpected:
        raise ValueError(
            f"{path}: checkpoint does not fit the model: {len(missing)} missing key(s) (e.g. {missing[:2]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:2]}); it was made for another model or an older scintix layout"
        )
