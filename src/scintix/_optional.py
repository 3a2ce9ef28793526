"""Imports of optional dependencies, each failing with the extra to install."""

from __future__ import annotations

import importlib
import sys
from importlib.util import find_spec
from types import ModuleType

_EXTRA = {"tensorboard": "tensorboard", "pylibjpeg": "dicom", "highdicom": "dicom", "onnx": "onnx", "onnxruntime": "onnx", "fastapi": "serve", "uvicorn": "serve"}


class MissingDependency(ImportError):
    """An optional package a feature needs is not installed; the message says what to install."""


def has(module: str) -> bool:
    """True when ``module`` can be imported (without importing it)."""
    return find_spec(module) is not None


def require(module: str) -> ModuleType:
    """Import ``module`` or raise an ImportError naming the extra that provides it."""
    if not has(module):
        extra = _EXTRA.get(module.split(".")[0], "dev")
        raise MissingDependency(f"{module} is needed for this feature: pip install 'scintix[{extra}]'")
    return importlib.import_module(module)


def import_monai_without_transformers() -> None:
    """From now on, MONAI's first import in this process happens with Hugging Face transformers hidden (command line only).

    ``import monai`` imports every MONAI submodule, and one network we never use (Transchex) imports transformers' BERT
    at module level: ~4 s of every scintix process's start-up when transformers is installed (measured on a 2-core
    CPU: ``import torch, monai`` 10-11 s, 5.5-6 s hidden). Hidden, MONAI's optional import records transformers as
    absent, which only Transchex would notice; the entry is removed as soon as MONAI is imported, so scintix's own
    text path (``text.hf_model``) imports transformers normally. Lazy (a finder that waits for ``import monai``), so
    commands that never need MONAI pay nothing. The command line calls this; a library user's process gets MONAI
    exactly as MONAI makes it.
    """
    if "monai" in sys.modules or any(isinstance(f, _MonaiWithoutTransformers) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _MonaiWithoutTransformers())


class _MonaiWithoutTransformers:
    """A one-shot import finder: finds ``monai`` as usual and runs its import with ``transformers`` hidden."""

    def find_spec(self, name, path=None, target=None):
        if name != "monai":
            return None
        sys.meta_path.remove(self)  # one shot, and the real finders now answer
        spec = find_spec("monai")
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        run = spec.loader.exec_module

        def exec_module(module):
            if "transformers" in sys.modules:  # already imported: hiding it would change nothing
                return run(module)
            sys.modules["transformers"] = None  # type: ignore[assignment]  # importing a None entry raises ImportError
            try:
                run(module)
            finally:
                if sys.modules.get("transformers", 0) is None:  # still our hiding entry
                    del sys.modules["transformers"]

        spec.loader.exec_module = exec_module  # type: ignore[method-assign]  # this spec's own loader instance
        return spec
