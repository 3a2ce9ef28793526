"""Imports of optional dependencies, each failing with the extra to install."""

from __future__ import annotations

import importlib
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
