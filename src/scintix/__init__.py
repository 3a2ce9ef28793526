"""scintix: deep-learning diagnosis of nuclear-medicine and other medical images.

Pipeline-ordered packages: ``data`` (read, manifest, split) -> ``transforms``
-> ``models`` -> ``training`` -> ``evaluation``; ``cli`` is a thin layer over
the public functions of those packages.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
