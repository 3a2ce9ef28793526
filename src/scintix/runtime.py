"""Device, precision and memory-layout choices: the fast paths, decided by measurement.

Measured on the 2-core reference CPU (AMD EPYC, AVX2, no AVX512-BF16/AMX):
bf16 autocast made ResNet-18 training 10-20x *slower*, so ``precision=auto``
uses bf16 on CPU only when the CPU reports native bf16 (AVX512-BF16 or AMX).
Channels-last helped some shapes and hurt others, so ``channels_last=auto``
times both layouts, in alternation, on the real model and batch and keeps the
faster. glibc allocator thresholds must be set before Python starts; the CLI
re-executes itself once with them (see :func:`allocator_env`).
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from typing import Callable

import torch
from torch import nn

__all__ = ["resolve_device", "resolve_precision", "autocast", "choose_channels_last", "allocator_env", "environment", "ALLOCATOR_ENV", "RECORDED_PACKAGES"]

log = logging.getLogger(__name__)

ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "4294967296", "MALLOC_TRIM_THRESHOLD_": "4294967296"}


def allocator_env() -> dict[str, str] | None:
    """Variables to add before re-executing, or None when set already or not on glibc Linux."""
    import platform

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    missing = {k: v for k, v in ALLOCATOR_ENV.items() if k not in os.environ}
    return missing or None


# What decides a run's numbers besides its config and seed: the same seed on the same data trained to a test Dice of 0.526
# in one environment and 0.602 in another (simulated bone scans, 2026-12-03), while two runs in one environment give
# identical weights. A run folder records these so such a difference can be traced.
RECORDED_PACKAGES = ("torch", "monai", "numpy", "scipy", "scikit-learn", "pillow", "pydicom", "transformers", "onnxruntime")


def environment() -> dict:
    """The software and hardware a run ran on: package versions (None: not installed), Python, the CPU's model name,
    torch's thread count, and the CUDA device's name where there is one."""
    import platform
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    cpu = platform.processor() or None
    try:
        with open("/proc/cpuinfo") as fh:  # Linux: platform.processor() is often empty or only the architecture
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"packages": {p: version(p) for p in RECORDED_PACKAGES}, "python": platform.python_version(), "platform": platform.platform(),
            "cpu": cpu, "threads": torch.get_num_threads(), "native_bf16": cpu_has_native_bf16(),
            "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} asked for, but CUDA is not available here")
    return dev


def cpu_has_native_bf16() -> bool:
    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(cpu, p, lambda: False)()) for p in probes)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError("fp16 autocast is only offered on CUDA; use bf16 or fp32 on CPU")
        return torch.float16
    if precision == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_has_native_bf16() else None
    raise ValueError(f"unknown precision {precision!r}; choose from auto, fp32, bf16, fp16")


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def _step_seconds(model: nn.Module, step: Callable[[nn.Module, torch.Tensor], None], x: torch.Tensor) -> float:
    start = time.perf_counter()
    step(model, x)
    return time.perf_counter() - start


def choose_channels_last(setting: str | bool, model: nn.Module, x: torch.Tensor, step: Callable[[nn.Module, torch.Tensor], None], rounds: int = 3) -> bool:
    """Resolve ``channels_last``: ``auto`` times ``step`` on copies of the model in both layouts.

    The two layouts are timed in alternation (NCHW, NHWC, NCHW, ...) after one
    warm-up step each, and the lower median wins: a burst of load from the
    machine then hits both alike. Timing each layout in one block, two steps
    long, and keeping NCHW unless NHWC was 5% faster picked the slower layout
    in one run of three on this CPU (ResNet-18 bf16, NHWC 5-10% faster).
    """
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() in ("true", "false"):
        return str(setting).lower() == "true"
    if setting != "auto":
        raise ValueError(f"channels_last must be auto, true or false, got {setting!r}")
    models = {False: copy.deepcopy(model), True: copy.deepcopy(model).to(memory_format=torch.channels_last)}
    inputs = {False: x, True: x.contiguous(memory_format=torch.channels_last)}
    for cl in (False, True):
        step(models[cl], inputs[cl])  # warm-up: allocation and kernel choice
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for cl in (False, True):
            times[cl].append(_step_seconds(models[cl], step, inputs[cl]))
    median = {cl: sorted(ts)[len(ts) // 2] for cl, ts in times.items()}
    choice = median[True] < median[False]
    log.info("channels_last auto: %.3fs/step NCHW vs %.3fs/step NHWC (median of %d) -> %s", median[False], median[True], rounds, "NHWC" if choice else "NCHW")
    return choice
