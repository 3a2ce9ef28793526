"""Heat-map overlays as PNG: the scan, the map on it, a colour bar, the prediction."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

__all__ = ["save_overlay", "overlay_figure"]


def overlay_figure(image: np.ndarray, cam: np.ndarray, title: str, channel_names: Sequence[str] | None = None, cmap_image: str = "gray_r", alpha: float = 0.45):
    """A matplotlib figure: each input channel with the map over it, and one colour bar.

    Scintigrams are shown dark-on-white (``gray_r``), as nuclear-medicine
    viewers do; pass ``cmap_image="gray"`` for CT/X-ray.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    image = np.asarray(image)
    if image.ndim == 2:
        image = image[None]
    c, h, w = image.shape
    names = list(channel_names or [f"channel {k}" for k in range(c)])
    fig_w = min(2.6 * c * max(w / h, 0.35) * 1.6 + 1.0, 14)
    fig, axes = plt.subplots(1, c, figsize=(fig_w, 4.6), dpi=100, squeeze=False)
    im = None
    for k, ax in enumerate(axes[0]):
        ch = image[k]
        lo, hi = np.percentile(ch, [0.5, 99.5])
        ax.imshow(ch, cmap=cmap_image, vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        # opacity follows relevance, so irrelevant areas leave the scan visible
        im = ax.imshow(cam, cmap="jet", alpha=np.clip(cam, 0, 1) * alpha + 0.05 * (cam > 0.02), vmin=0, vmax=1, interpolation="bilinear")
        ax.set_title(names[k] if k < len(names) else "", fontsize=8)
        ax.axis("off")
    cb = fig.colorbar(im, ax=axes[0].tolist(), fraction=0.046, pad=0.02)
    cb.set_label("relevance (normalised)", fontsize=7)
    cb.ax.tick_params(labelsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def save_overlay(path: str | Path, image: np.ndarray, cam: np.ndarray, title: str, channel_names: Sequence[str] | None = None, cmap_image: str = "gray_r") -> Path:
    import matplotlib.pyplot as plt

    fig = overlay_figure(image, cam, title, channel_names, cmap_image)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path
