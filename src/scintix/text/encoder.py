"""Report encoders: token ids -> token features ``(B, L, D)``.

:class:`TransformerTextEncoder` is trained from scratch with the segmenter (token
+ learned position embeddings, a pre-norm Transformer encoder, a final
LayerNorm). :class:`HFTextEncoder` wraps a local Hugging Face model folder
(a Chinese MacBERT, a BERT), frozen or fine-tuned; its hidden size is ``dim``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

__all__ = ["TransformerTextEncoder", "HFTextEncoder", "masked_mean"]


def masked_mean(feats: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
    """The mean of each report's non-pad token features ``(B, D)``."""
    keep = (~padding).unsqueeze(-1).to(feats.dtype)
    return (feats * keep).sum(1) / keep.sum(1).clamp_min(1.0)


class TransformerTextEncoder(nn.Module):
    """A small Transformer over report tokens (2 layers, 4 heads, 128 wide by default)."""

    def __init__(self, vocab_size: int, dim: int = 128, layers: int = 2, heads: int = 4, max_length: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.dim = dim
        self.max_length = max_length
        self.tokens = nn.Embedding(max(vocab_size, 3), dim, padding_idx=0)
        self.positions = nn.Embedding(max_length, dim)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.tokens.weight, std=0.02)
        nn.init.normal_(self.positions.weight, std=0.02)

    def forward(self, ids: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device).clamp_max(self.max_length - 1)
        h = self.tokens(ids) + self.positions(pos)[None]
        return self.norm(self.encoder(h, src_key_padding_mask=padding))


class HFTextEncoder(nn.Module):
    """A local Hugging Face encoder (``local_files_only``); ``freeze`` keeps its weights and its eval mode."""

    def __init__(self, folder: str | Path, freeze: bool = True) -> None:
        super().__init__()
        from .hf import load_hf_model

        self.model = load_hf_model(folder)
        self.freeze = freeze
        self.dim = int(self.model.config.hidden_size)
        if freeze:
            self.model.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze:
            self.model.eval()  # a frozen encoder keeps its dropout off
        return self

    def forward(self, ids: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze):
            return self.model(input_ids=ids, attention_mask=(~padding).long()).last_hidden_state
