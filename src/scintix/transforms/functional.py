"""Pure preprocessing functions on ``(C, H, W)`` arrays, and the display helpers beside them (``to_uint8``, ``heatmap_rgba``); no state, no randomness."""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["normalize_intensity", "fit_geometry", "resize_pad", "resize_pad_box", "heatmap_rgba", "resize_pad_mask", "unresize_pad_mask", "to_uint8", "Normalization"]

Normalization = Literal["none", "minmax", "zscore", "percentile"]


def normalize_intensity(
    arr: np.ndarray, method: Normalization = "none", percentiles: tuple[float, float] = (1.0, 99.0), eps: float = 1e-6
) -> np.ndarray:
    """Per-image, per-channel intensity normalisation.

    ``none`` keeps raw values (P1's "no normalisation" arm); ``minmax`` maps to
    [0, 1]; ``zscore`` to zero mean and unit variance; ``percentile`` clips to the
    given percentiles and maps that range to [0, 1] (robust to a hot bladder or
    injection site, which would otherwise squash the skeleton in ``minmax``).
    A constant channel maps to 0 rather than NaN.
    """
    arr = np.asarray(arr, dtype=np.float32)
    if method == "none":
        return arr
    axes = (1, 2)
    if method == "minmax":
        lo, hi = arr.min(axis=axes, keepdims=True), arr.max(axis=axes, keepdims=True)
        return ((arr - lo) / np.maximum(hi - lo, eps)).astype(np.float32)
    if method == "zscore":
        mean, std = arr.mean(axis=axes, keepdims=True), arr.std(axis=axes, keepdims=True)
        return ((arr - mean) / np.maximum(std, eps)).astype(np.float32)
    if method == "percentile":
        lo = np.percentile(arr, percentiles[0], axis=axes, keepdims=True)
        hi = np.percentile(arr, percentiles[1], axis=axes, keepdims=True)
        return ((np.clip(arr, lo, hi) - lo) / np.maximum(hi - lo, eps)).astype(np.float32)
    raise ValueError(f"unknown normalisation {method!r}; choose from none, minmax, zscore, percentile")


def fit_geometry(original: tuple[int, int], size: tuple[int, int]) -> tuple[float, int, int, int, int]:
    """How :func:`resize_pad` places an ``original`` (H, W) image in ``size``: (scale, new H, new W, top pad, left pad)."""
    h, w = original
    th, tw = size
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    return scale, nh, nw, (th - nh) // 2, (tw - nw) // 2


def resize_pad_box(box: tuple[int, int, int, int], original: tuple[int, int], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A ``(y0, x0, y1, x1)`` box on the ``original`` image moved to where :func:`resize_pad` puts it in ``size``."""
    scale, _, _, top, left = fit_geometry(original, size)
    y0, x0, y1, x1 = box
    return top + round(y0 * scale), left + round(x0 * scale), top + round(y1 * scale), left + round(x1 * scale)


def resize_pad(arr: np.ndarray, size: tuple[int, int], pad_value: float | None = None) -> np.ndarray:
    """Resize keeping the aspect ratio so the image fits ``size`` (H, W), then centre-pad.

    Downsizing uses antialiased bilinear interpolation (area-like, keeps small hot
    spots visible); padding uses ``pad_value`` or the image minimum (the
    background of a scintigram). An image already of ``size`` is returned unchanged.
    """
    arr = np.asarray(arr, dtype=np.float32)
    h, w = arr.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return arr
    _, nh, nw, top, left = fit_geometry((h, w), size)
    t = torch.from_numpy(np.ascontiguousarray(arr))[None]
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h or nw < w)
    fill = float(arr.min()) if pad_value is None else float(pad_value)
    t = F.pad(t, (left, tw - nw - left, top, th - nh - top), value=fill)
    return t[0].numpy()


def resize_pad_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`resize_pad` for a label map ``(H, W)`` or ``(1, H, W)``: nearest neighbour (no new labels), padded with 0.

    Labels are 0-255 (the result is ``uint8``); anything else raises ``ValueError`` rather than wrap around silently
    (an image passed here by mistake would come back with its counts modulo 256).
    """
    m = np.asarray(mask)
    if m.size and (m.min() < 0 or m.max() > 255):
        raise ValueError(f"label map values {m.min():g}..{m.max():g}: labels must lie in 0..255 (resize an image with resize_pad)")
    m = m[None] if m.ndim == 2 else m
    h, w = m.shape[-2:]
    th, tw = size
    if (h, w) == (th, tw):
        return m.astype(np.uint8)
    _, nh, nw, top, left = fit_geometry((h, w), size)
    t = torch.from_numpy(np.ascontiguousarray(m.astype(np.float32)))[None]
    if (nh, nw) != (h, w):
        t = F.interpolate(t, size=(nh, nw), mode="nearest-exact")
    t = F.pad(t, (left, tw - nw - left, top, th - nh - top), value=0.0)
    return t[0].numpy().astype(np.uint8)


def unresize_pad_mask(mask: np.ndarray, original: tuple[int, int]) -> np.ndarray:
    """Undo :func:`resize_pad` for a label map ``(H, W)`` at the model's size: the padding cut off, then nearest-neighbour back to ``original`` (H, W).

    What puts a predicted mask back on the source image's pixel grid (a DICOM
    SEG's frame must align with its source).
    """
    m = np.asarray(mask)
    th, tw = m.shape[-2:]
    h, w = original
    if (h, w) == (th, tw):
        return m.copy()
    _, nh, nw, top, left = fit_geometry((h, w), (th, tw))
    inner = m[..., top : top + nh, left : left + nw]
    t = torch.from_numpy(np.ascontiguousarray(inner.astype(np.float32)))[None, None] if inner.ndim == 2 else torch.from_numpy(inner.astype(np.float32))[None]
    t = F.interpolate(t, size=(h, w), mode="nearest-exact")
    return t[0, 0].numpy().astype(m.dtype) if inner.ndim == 2 else t[0].numpy().astype(m.dtype)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """An image stretched min..max to 0..255 uint8, for display (a constant image is all 0)."""
    img = np.asarray(image, dtype=np.float32)
    lo, hi = float(img.min()), float(img.max())
    return np.zeros(img.shape, np.uint8) if hi <= lo else ((img - lo) / (hi - lo) * 255).astype(np.uint8)


def heatmap_rgba(cam: np.ndarray) -> np.ndarray:
    """A [0, 1] map as RGBA uint8 for display: jet colours, alpha rising with the value (non-finite values count as 0)."""
    from matplotlib import colormaps

    c = np.clip(np.nan_to_num(np.asarray(cam, dtype=np.float32)), 0, 1)
    rgba = colormaps["jet"](c)
    rgba[..., 3] = 0.25 + 0.75 * c
    return (rgba * 255).astype(np.uint8)
