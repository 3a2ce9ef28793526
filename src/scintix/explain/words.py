"""Which report words a text-guided segmenter attended to for one scan.

Each gated cross-attention stage of :class:`~scintix.models.text_segmentation.TextSegmenter`
gives, per pixel, attention weights over the report's tokens. For one scan
we average them over the pixels predicted as lesion (all pixels when none
is predicted), per stage, then over the stages weighted by each stage's
``|tanh(gate)|`` (a stage whose gate stayed near 0 barely uses what it
attended to). The ``[CLS]`` token is kept: attention parked there is
attention not spent on any word. Attention is where the model looked, not
proof of why it decided; read it beside the heat map.
"""

from __future__ import annotations

import html
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.ensemble import cam_layers

__all__ = ["BoundText", "word_attention", "write_words_html"]


class BoundText(nn.Module):
    """A text-guided model with its report fixed (``text``), so CAM methods can call it with the image alone."""

    def __init__(self, model: nn.Module, text: str | None = None) -> None:
        super().__init__()
        self.model = model
        self.text = text
        self.cam_layers = [f"model.{name}" for name in cam_layers(model)]
        self.cam_layer = self.cam_layers[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x, text=self.text)


def word_attention(model, image: np.ndarray, text: str, device, lesion: np.ndarray | None = None) -> dict:
    """``{"tokens": [...], "weights": [...] (sum 1), "per_stage": [[...], ...], "gates": [...], "region": ...}`` for one scan.

    ``lesion`` (H, W) bool: the pixels to average over (the predicted lesion); ``None`` or empty: the whole image.
    """
    from ..models.text_segmentation import GatedCrossAttention

    stages = [f for f in model.fusions if isinstance(f, GatedCrossAttention)]
    if not stages:
        raise ValueError("this model fuses the report by FiLM (one vector per scan): it has no per-word attention to show")
    tokens = model.tokenizer.pieces(text)
    model.record_attention(True)
    roi, model.roi_size = model.roi_size, None  # one whole-image pass: sliding windows would keep only the last window's attention
    try:
        with torch.no_grad():
            model(torch.from_numpy(np.asarray(image, np.float32))[None].to(device), text=[text])
        maps = [s.attention for s in stages]
    finally:
        model.record_attention(False)
        model.roi_size = roi
    h, w = np.asarray(image).shape[-2:]
    region = "predicted lesion" if lesion is not None and lesion.any() else "whole image"
    per_stage, gates = [], []
    for s, a in zip(stages, maps):
        a = a[0].float()  # (h'*w', L)
        side = _stage_shape(a.shape[0], h, w)
        if region == "predicted lesion":
            m = F.interpolate(torch.from_numpy(lesion.astype(np.float32))[None, None], size=side, mode="area")[0, 0].flatten().to(a.device)
            m = m / m.sum().clamp_min(1e-8)
            v = (a * m[:, None]).sum(0)
        else:
            v = a.mean(0)
        per_stage.append(v.cpu().numpy()[: len(tokens)])
        gates.append(float(torch.tanh(s.gate.detach()).abs()))
    g = np.asarray(gates)
    weights = np.average(np.stack(per_stage), axis=0, weights=g if g.sum() > 0 else None)
    weights = weights / max(weights.sum(), 1e-12)
    return {"tokens": tokens, "weights": weights.tolist(), "per_stage": [p.tolist() for p in per_stage], "gates": gates, "region": region}


def _stage_shape(n: int, h: int, w: int) -> tuple[int, int]:
    """The (h', w') of a stage holding ``n`` pixels of an image padded to a multiple of 16 and halved k times."""
    ph, pw = -(-h // 16) * 16, -(-w // 16) * 16
    for k in range(5):
        if (ph >> k) * (pw >> k) == n:
            return ph >> k, pw >> k
    raise ValueError(f"attention over {n} pixels does not fit a {h}x{w} input")


def write_words_html(path: Path, result: dict, title: str) -> Path:
    """The report with each token shaded by its attention weight, and the top tokens listed."""
    w = np.asarray(result["weights"], float)
    top = w.max() if len(w) else 1.0
    spans = "".join(
        f"<span title='{wt:.3f}' style='background:rgba(230,60,30,{0.08 + 0.9 * wt / top:.2f});padding:1px 2px;margin:1px;border-radius:3px'>{html.escape(tok)}</span>"
        for tok, wt in zip(result["tokens"], w)
    )
    order = np.argsort(-w)[:8]
    rows = "".join(f"<tr><td>{html.escape(result['tokens'][i])}</td><td>{w[i]:.3f}</td></tr>" for i in order)
    gates = ", ".join(f"{g:.3f}" for g in result["gates"])
    page = (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><body style='font-family:sans-serif;max-width:60em'>"
            f"<h3>{html.escape(title)}</h3><p style='line-height:2'>{spans}</p>"
            f"<p>Attention averaged over the {result['region']} pixels and the decoder stages (weighted by |tanh(gate)|: {gates}).</p>"
            f"<table border=1 cellpadding=3 style='border-collapse:collapse'><tr><th>token</th><th>share of attention</th></tr>{rows}</table>"
            "<p style='color:#666'>Where the decoder looked in the text, not proof of why it decided.</p></body>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
