"""Report grounding: where a report says the lesions are, read from the report alone, for late fusion with a U-Net.

Why a separate model: the decoder-fused text models (:mod:`scintix.models.text_segmentation`) learned, on simulated
bone scans, what a report rules out but not where it points: the image path already explains most lesion pixels, so
little of the segmentation loss asks the text *where*. Trained on its own, with the lesion masks as its only target
and no image to lean on, the same pieces (a report encoder and a :class:`SitePrior`, in the body's frame) must read
the sites. Its map is then added to a trained U-Net's lesion logit, ``logit + alpha * map``, with ``alpha`` and the
threshold chosen on validation (:func:`scintix.training.grounding.choose_fusion`; ``alpha = 0`` is the U-Net itself).
A scan without a report gets a zero map: the U-Net's own output.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..text.encoder import TransformerTextEncoder
from .text_segmentation import SitePrior, body_frame

__all__ = ["ReportGrounding", "lesion_logit", "fused_logit"]


class ReportGrounding(nn.Module):
    """Reports -> a lesion logit map ``(B, H, W)`` in each image's body frame (:func:`body_frame`).

    Args:
        tokenizer: a :class:`~scintix.text.tokenizer.Tokenizer` built from the training reports.
        dim, layers, heads: the report encoder (:class:`TransformerTextEncoder`).
        grid: the map's cells in the body frame (rows, columns).
    """

    def __init__(self, tokenizer, dim: int = 128, layers: int = 2, heads: int = 4, grid: tuple[int, int] = (64, 16)) -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.encoder = TransformerTextEncoder(len(tokenizer), dim, layers, heads, max(tokenizer.max_length, 2))
        self.prior = SitePrior(dim, 1, grid)

    def forward(self, reports: Sequence[str | None], frame: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """``frame``: ``(B, 3)`` from :func:`body_frame` of the model inputs; ``size``: the map's ``(H, W)`` in pixels."""
        if len(reports) != len(frame):
            raise ValueError(f"{len(reports)} reports for {len(frame)} frames")
        ids, padding, has_text = (t.to(frame.device) for t in self.tokenizer.encode(list(reports)))
        return self.prior(self.encoder(ids, padding), padding, has_text, size, frame)[:, 0]

    def maps_for(self, reports: Sequence[str | None], images: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
        """Eval-mode maps at the images' size for images ``(B, C, H, W)`` (their body frames found here)."""
        was = self.training
        self.eval()
        try:
            with torch.no_grad():
                return torch.cat([self(list(reports[i : i + batch_size]), body_frame(images[i : i + batch_size]), tuple(images.shape[-2:]))
                                  for i in range(0, len(images), batch_size)]) if len(images) else images.new_zeros((0, *images.shape[-2:]))
        finally:
            self.train(was)


def lesion_logit(logits: torch.Tensor) -> torch.Tensor:
    """A two-class segmenter's ``(B, 2, H, W)`` logits -> the lesion's logit ``(B, H, W)`` (softmax = sigmoid of the difference)."""
    if logits.ndim != 4 or logits.shape[1] != 2:
        raise ValueError(f"logits of shape {tuple(logits.shape)}: a binary segmenter's (B, 2, H, W)")
    return logits[:, 1] - logits[:, 0]


def fused_logit(lesion: torch.Tensor, grounding_map: torch.Tensor, alpha: float) -> torch.Tensor:
    """The late fusion: the image's lesion logit plus ``alpha`` times the report's map."""
    return lesion + float(alpha) * grounding_map
