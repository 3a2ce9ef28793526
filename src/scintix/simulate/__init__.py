"""Simulated nuclear-medicine scans: whole-body bone scans (ANT + POST) and thyroid scans.

Everything here is SYNTHETIC and says so in every file it writes. See
:func:`~scintix.simulate.dataset.simulate_dataset` and ``scintix simulate``.
"""

from .bone import BONE_LABELS, simulate_bone_scan
from .dataset import SimulateConfig, simulate_dataset
from .thyroid import THYROID_FEATURES, simulate_thyroid_scan

__all__ = ["BONE_LABELS", "THYROID_FEATURES", "SimulateConfig", "simulate_bone_scan", "simulate_thyroid_scan", "simulate_dataset"]
