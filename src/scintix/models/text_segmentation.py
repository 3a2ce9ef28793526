"""Report-guided segmentation (P4): a U-Net whose decoder reads the diagnostic report.

``text_unet`` fuses the report's token features into **every decoder stage**
(the four up-sampling blocks of MONAI's ``BasicUNet``, 128 -> 64 -> 32 -> 32
channels) by *gated cross-attention*, as GuideDecoder (Zhong et al., MICCAI
2023) fuses text into its decoder: each pixel's features (layer-normalised,
plus a fixed 2-D sine position code, so "lower left lung" can be tied to a
place) query the report tokens; the answer, read together with the query by
a small MLP (so a word can mean something at one place and not at another),
is added to the features scaled by ``tanh(gate)`` (Flamingo's tanh gating).
The gates start near zero (0.1, see ``GATE_INIT``), so training starts close
to the plain U-Net, whose weights it shares exactly with the same seed; with
the gates at 0 the text model *is* the plain U-Net (same output, tested). ``text_unet_film`` is the simpler comparison:
FiLM (Perez et al. 2018) from the masked-mean report vector, one
scale-and-shift per channel at each decoder stage, zero-initialised.

Choices P4's abstract leaves open, and what we chose:

- *Text encoder.* P4 uses a pretrained Chinese MacBERT. Nothing can be
  downloaded here, so the default is a small Transformer (2 layers, 128 wide)
  trained from scratch with the segmenter on a tokenizer built from the
  training reports (character level for Chinese); a local MacBERT/BERT
  folder can replace it (``text.hf_model``, frozen by default).
- *Where the text enters.* P4 says its features are "fused into the image
  decoder"; we fuse at all four decoder stages (GuideDecoder uses three).
- *How.* Cross-attention (image queries, text keys/values), gated; not
  concatenation, so the image path is untouched when the gate is 0.
- *Where "right 12th rib" is.* The fixed position code is the pixel's place
  in the image by default (``position="image"``). On whole-body scans the body
  sits at a different height and with a different stature in each image, so
  ``position="body"`` measures it in the body's frame instead: y from the top
  to the bottom of the body (the 1 % and 99 % points of the image's cumulative
  row mass), x from the body's centre of mass (on simulated scans the thorax
  centre's spread falls from 0.014 to 0.005 of the image height). Not for
  patch-trained runs (a window has no whole body).
- *A site prior (``prior=True``, opt-in).* Cross-attention must learn where
  a named site is through the image features; on simulated bone scans it
  learned what a report rules out, not where it points. The prior is the
  direct route: every report token's feature votes a coarse logit map (64x16
  cells) in the fusion's frame (the body's with ``position="body"``), the
  votes of a report are summed (a benign focus can vote against its site),
  and the map, sampled at each pixel's place in that frame, is added to the
  foreground logits. Zero-initialised: the model starts exactly as without it.
- *Missing reports.* Not addressed by P4. A report that is empty or missing
  skips the fusion for that scan (the plain U-Net path); with report
  dropout in training (``text.report_dropout``) that path is trained too, so
  ``predict`` without a report is a supported use, not a degraded accident.

``forward(x, text=None)``: ``text`` is a list of report strings (one per
image; ``None`` or ``""`` for none). With ``record_attention`` set, each
cross-attention stage keeps its last attention map ``(B, H*W, L)``
(``attention``), for :func:`scintix.explain.words.word_attention`.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from ..text.encoder import HFTextEncoder, TransformerTextEncoder, masked_mean
from ..text.tokenizer import Tokenizer, build_tokenizer
from .segmentation import Segmenter, sliding_window

__all__ = ["TextSegmenter", "GatedCrossAttention", "FiLM", "SitePrior", "text_unet", "text_unet_film", "position_code", "body_frame", "POSITIONS"]

UNET_FEATURES = (32, 32, 64, 128, 256, 32)
# Near zero, not zero: with tanh(gate) = 0 the attention and its MLP get no gradient until the gate itself has grown, and on
# a toy task where only the report says which of two blobs is the lesion, 2 of 4 seeds had not learned it after 160 steps;
# at 0.1, 4 of 4 had (Dice 1.0). The model starts within 10 % of the plain U-Net's fused features.
GATE_INIT = 0.1


def decoder_channels(features: Sequence[int]) -> tuple[int, int, int, int]:
    """Channels after BasicUNet's upcat_4, upcat_3, upcat_2, upcat_1 (128, 64, 32, 32 for the default features)."""
    return (features[3], features[2], features[1], features[5])


POSITIONS = ("image", "body")


def position_code(h: int, w: int, channels: int, device=None, dtype=None, frame: torch.Tensor | None = None) -> torch.Tensor:
    """A fixed 2-D sine/cosine code ``(h*w, channels)`` of the normalised (y, x) position (the same for any size).

    With ``frame`` (``(B, 3)``: the body's top, bottom and centre x, as fractions of the image; :func:`body_frame`) the
    code is ``(B, h*w, channels)`` of the position in the body's frame: y 0 at its top and 1 at its bottom, x 0.5 at
    its centre (x keeps the image's scale: arms widen a body's extent, not its skeleton)."""
    quarter = max(channels // 4, 1)
    freqs = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(100.0) / quarter)) * math.pi
    ys, xs = frame_coordinates(h, w, frame, device)

    def wave(v: torch.Tensor) -> torch.Tensor:
        return torch.cat([torch.sin(v[..., None] * freqs), torch.cos(v[..., None] * freqs)], -1)  # (B, n, 2q)

    ey, ex = wave(ys), wave(xs)
    b = ey.shape[0]
    code = torch.cat([ey[:, :, None].expand(b, h, w, -1), ex[:, None].expand(b, h, w, -1)], -1).reshape(b, h * w, -1)
    code = torch.nn.functional.pad(code, (0, max(0, channels - code.shape[-1])))[..., :channels]
    code = code if frame is not None else code[0]  # (h*w, C) broadcasts over a batch as it is
    return code.to(dtype) if dtype is not None else code


def frame_coordinates(h: int, w: int, frame: torch.Tensor | None = None, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pixel row's and column's place in the frame: ``(B, h)`` with 0 at the frame's top and 1 at its bottom, and
    ``(B, w)`` with 0.5 at its centre (``frame``: ``(B, 3)`` top, bottom, centre x, as :func:`body_frame`); without a
    frame, the place in the image, ``(1, h)`` and ``(1, w)``."""
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) / w
    if frame is None:
        return ys[None], xs[None]
    f = frame.to(device=device, dtype=torch.float32)
    return (ys[None] - f[:, :1]) / (f[:, 1:2] - f[:, :1]).clamp(min=1e-3), xs[None] - f[:, 2:3] + 0.5


def body_frame(x: torch.Tensor, lo: float = 0.01, hi: float = 0.99) -> torch.Tensor:
    """``(B, 3)``: the body's top and bottom (where the image's cumulative row mass reaches ``lo`` and ``hi``) and its
    centre of mass in x, as fractions of the image's height and width. Mass, not a threshold: no intensity cut to tune,
    and Poisson noise in the background shifts it little (on simulated whole-body scans the found top and bottom
    correlate 0.99 and 1.00 with the true ones)."""
    m = x.detach().float().clamp(min=0).mean(1)  # (B, H, W)
    rows, cols = m.sum(-1), m.sum(-2)
    h, w = rows.shape[-1], cols.shape[-1]
    c = torch.cumsum(rows, -1)
    c = c / c[:, -1:].clamp(min=1e-8)
    top = (c < lo).sum(-1).float() / h
    bottom = ((c < hi).sum(-1).float() + 1) / h
    centre = (cols * ((torch.arange(w, device=x.device, dtype=torch.float32) + 0.5) / w)).sum(-1) / cols.sum(-1).clamp(min=1e-8)
    empty = rows.sum(-1) <= 0  # a blank image: the image's own frame
    frame = torch.stack([top, bottom, centre], -1)
    return torch.where(empty[:, None], torch.tensor([0.0, 1.0, 0.5], device=x.device), frame)


class GatedCrossAttention(nn.Module):
    """Pixels attend to report tokens; the answer is added through a tanh gate that starts at 0."""

    def __init__(self, channels: int, text_dim: int, heads: int | None = None, gate_init: float = GATE_INIT) -> None:
        super().__init__()
        heads = heads or max(1, channels // 32)
        self.norm = nn.LayerNorm(channels)
        self.text_norm = nn.LayerNorm(text_dim)
        self.attn = nn.MultiheadAttention(channels, heads, kdim=text_dim, vdim=text_dim, batch_first=True)
        # the answer is read together with the pixel's own query (features + position): "left" means something only at a place
        self.out = nn.Sequential(nn.Linear(2 * channels, channels), nn.GELU(), nn.Linear(channels, channels))
        self.gate = nn.Parameter(torch.full((1,), float(gate_init)))
        self.record_attention = False
        self.attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor, text: torch.Tensor, padding: torch.Tensor, has_text: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.norm(x.flatten(2).transpose(1, 2)) + position_code(h, w, c, x.device, x.dtype, frame)
        t = self.text_norm(text).to(q.dtype)
        a, weights = self.attn(q, t, t, key_padding_mask=padding, need_weights=self.record_attention, average_attn_weights=True)
        if self.record_attention:
            self.attention = weights.detach()
        delta = torch.tanh(self.gate).to(a.dtype) * self.out(torch.cat([a, q.to(a.dtype)], -1)) * has_text.to(a.dtype)[:, None, None]
        return x + delta.transpose(1, 2).reshape(b, c, h, w).to(x.dtype)


class FiLM(nn.Module):
    """Per-channel scale and shift from the pooled report vector; zero-initialised (identity at start)."""

    def __init__(self, channels: int, text_dim: int) -> None:
        super().__init__()
        self.text_norm = nn.LayerNorm(text_dim)
        self.proj = nn.Linear(text_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, text: torch.Tensor, padding: torch.Tensor, has_text: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        gamma, beta = self.proj(self.text_norm(masked_mean(text, padding))).chunk(2, -1)
        m = has_text.to(gamma.dtype)[:, None]
        return (x * (1 + m * gamma)[..., None, None] + (m * beta)[..., None, None]).to(x.dtype)


class SitePrior(nn.Module):
    """Where the report places lesions, as logits added to the foreground classes: each token's feature votes a
    ``(classes, *grid)`` map in the frame (``(B, 3)``: top, bottom, centre x, as :func:`body_frame`; the image's own
    without one), a report's votes are summed over its tokens, and the map is sampled at every pixel's place in that
    frame (zero outside it). Zero-initialised, and zero for a scan without a report."""

    def __init__(self, text_dim: int, classes: int, grid: tuple[int, int] = (64, 16)) -> None:
        super().__init__()
        self.classes, self.grid = classes, tuple(grid)
        self.norm = nn.LayerNorm(text_dim)
        self.vote = nn.Linear(text_dim, classes * self.grid[0] * self.grid[1])
        nn.init.zeros_(self.vote.weight)
        nn.init.zeros_(self.vote.bias)

    def maps(self, text: torch.Tensor, padding: torch.Tensor, has_text: torch.Tensor) -> torch.Tensor:
        """``(B, classes, *grid)``: the report's summed votes in the frame's cells."""
        votes = self.vote(self.norm(text))  # (B, L, classes * cells)
        kept = (~padding).to(votes.dtype)[..., None] * has_text.to(votes.dtype)[:, None, None]
        return (votes * kept).sum(1).view(text.shape[0], self.classes, *self.grid)

    def forward(self, text: torch.Tensor, padding: torch.Tensor, has_text: torch.Tensor, size: tuple[int, int], frame: torch.Tensor | None = None) -> torch.Tensor:
        m = self.maps(text, padding, has_text)
        b, (h, w) = m.shape[0], size
        v, u = frame_coordinates(h, w, frame, m.device)  # grid_sample wants x then y, in [-1, 1]
        grid = torch.stack([(2 * u - 1)[:, None, :].expand(b, h, w), (2 * v - 1)[:, :, None].expand(b, h, w)], -1)
        return nn.functional.grid_sample(m.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False).to(m.dtype)


class NoFusion(nn.Module):
    """A decoder stage that does not read the report."""

    def forward(self, x: torch.Tensor, text: torch.Tensor, padding: torch.Tensor, has_text: torch.Tensor, frame: torch.Tensor | None = None) -> torch.Tensor:
        return x


class TextSegmenter(Segmenter):
    """A :class:`Segmenter` over MONAI ``BasicUNet`` that takes the report too (``inputs = ("image", "text")``).

    Args:
        net: a ``BasicUNet`` (its blocks are run one by one, fusion after each up-sampling block).
        num_classes: K, background included.
        tokenizer: turns reports into ids (saved with the run as ``tokenizer.json``).
        encoder: token ids -> ``(B, L, D)`` features.
        fusion: ``cross_attention`` or ``film``.
        report_dropout: in training, the share of scans whose report is withheld (the text-free path learns too).
        fuse_stages: the decoder stages that read the report (1 = after the coarsest up-block ... 4 = full resolution).
        position: the cross-attention's position code in the ``image``'s frame or the ``body``'s (:func:`body_frame`).
        prior: add a :class:`SitePrior` (the report's votes for where lesions are, in that frame) to the foreground logits.
        prior_input: a second :class:`SitePrior`, always in the body's frame, whose map enters the U-Net after its first
            block (a zero-initialised 3x3 convolution adds it to those features, which feed the encoder and the
            full-resolution skip), so the network can weigh a place the report names against what the image shows
            there. In training the map is also a second output head (deep supervision, weight 1/2): the masks teach it
            where each report's words point, as :mod:`scintix.models.grounding` learns it from the report alone.
    """

    inputs = ("image", "text")
    backbone_prefix = "net."  # model.weights: a trained `unet` run's checkpoint warm-starts the image path

    def __init__(self, net: nn.Module, num_classes: int, tokenizer, encoder: nn.Module, fusion: str = "cross_attention", report_dropout: float = 0.0,
                 features: Sequence[int] = UNET_FEATURES, fuse_stages: Sequence[int] = (1, 2, 3, 4), position: str = "image", prior: bool = False,
                 prior_input: bool = False) -> None:
        super().__init__(net, num_classes, 16, "net.upcat_1")
        if fusion not in ("cross_attention", "film"):
            raise ValueError(f"fusion {fusion!r}: cross_attention or film")
        if position not in POSITIONS:
            raise ValueError(f"position {position!r}: one of {', '.join(POSITIONS)}")
        self.position = position
        self.tokenizer = tokenizer
        self.text_encoder = encoder
        self.fusion = fusion
        self.report_dropout = float(report_dropout)
        if not fuse_stages or not set(fuse_stages) <= {1, 2, 3, 4}:
            raise ValueError(f"fuse_stages {list(fuse_stages)}: decoder stages among 1 (coarsest) .. 4 (full resolution)")
        make = (lambda c: GatedCrossAttention(c, encoder.dim)) if fusion == "cross_attention" else (lambda c: FiLM(c, encoder.dim))
        # stage i (1 = coarsest) fuses the report only when listed; the others pass features through (GuideDecoder fuses three)
        self.fusions = nn.ModuleList(make(c) if i in fuse_stages else NoFusion() for i, c in enumerate(decoder_channels(features), start=1))
        self.prior = SitePrior(encoder.dim, num_classes - 1) if prior else None  # made last: the other weights stay those of the same seed without it
        self.site_input = SitePrior(encoder.dim, num_classes - 1) if prior_input else None
        self.site_inject = nn.Conv2d(num_classes - 1, features[0], 3, padding=1) if prior_input else None
        if self.site_inject is not None:  # zero: the model starts as the one without it
            nn.init.zeros_(self.site_inject.weight)
            nn.init.zeros_(self.site_inject.bias)
        self._text: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def encode_text(self, text: Sequence[str | None] | str | None, batch: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(features (B, L, D), padding (B, L), has_text (B,))``; report dropout applies in training mode."""
        if text is None or isinstance(text, str):
            text = [text] * batch
        if len(text) != batch:
            raise ValueError(f"{len(text)} reports for {batch} images")
        ids, padding, has_text = (t.to(device) for t in self.tokenizer.encode(list(text)))
        if self.training and self.report_dropout > 0:
            has_text = has_text & (torch.rand(batch, device=device) >= self.report_dropout)
        return self.text_encoder(ids, padding), padding, has_text

    def forward(self, x: torch.Tensor, text: Sequence[str | None] | str | None = None) -> torch.Tensor:
        feats, padding, has_text = self.encode_text(text, x.shape[0], x.device)
        if not self.training and self.roi_size is not None and (x.shape[-2] > self.roi_size[0] or x.shape[-1] > self.roi_size[1]):
            outs = []
            for i in range(x.shape[0]):  # windows of one scan share its report
                one = (feats[i : i + 1], padding[i : i + 1], has_text[i : i + 1])
                outs.append(sliding_window(x[i : i + 1], self.roi_size, lambda w, one=one: self._decode(w, *(t.expand(w.shape[0], *t.shape[1:]) for t in one)), self.sw_overlap))
            return torch.cat(outs)
        return self._decode(x, feats, padding, has_text)

    def _decode(self, x: torch.Tensor, feats, padding, has_text) -> torch.Tensor:
        self._text = (feats, padding, has_text)
        try:
            return self._forward_padded(x)
        finally:
            self._text = None

    def _run_net(self, x: torch.Tensor) -> torch.Tensor:
        n = self.net
        feats, padding, has_text = self._text
        frame = body_frame(x) if self.position == "body" else None
        x0 = n.conv_0(x)
        site = None
        if self.site_input is not None:
            site = self.site_input(feats, padding, has_text, x.shape[-2:], frame if frame is not None else body_frame(x))
            x0 = x0 + self.site_inject(site.to(x0.dtype))
        x1 = n.down_1(x0)
        x2 = n.down_2(x1)
        x3 = n.down_3(x2)
        x4 = n.down_4(x3)
        u = x4
        for up, skip, fuse in zip((n.upcat_4, n.upcat_3, n.upcat_2, n.upcat_1), (x3, x2, x1, x0), self.fusions):
            u = fuse(up(u, skip), feats, padding, has_text, frame)
        out = n.final_conv(u)
        if self.prior is not None:  # background keeps its logit; each foreground class gets the report's map
            p = self.prior(feats, padding, has_text, out.shape[-2:], frame)
            out = out + torch.cat([torch.zeros_like(out[:, :1]), p.to(out.dtype)], 1)
        if site is not None and self.training:  # (B, 2, K, H, W): the segmentation, then the report's map as its own head
            return torch.stack([out, torch.cat([torch.zeros_like(out[:, :1]), site.to(out.dtype)], 1)], 1)
        return out

    def record_attention(self, on: bool = True) -> None:
        for f in self.fusions:
            if isinstance(f, GatedCrossAttention):
                f.record_attention = on
                f.attention = None


def _build(fusion: str, in_channels: int, num_classes: int, dropout: float, tokenizer, text_dim: int, text_layers: int, text_heads: int,
           report_dropout: float, hf_model: str | None, hf_freeze: bool, max_length: int, features: Sequence[int],
           fuse_stages: Sequence[int] = (1, 2, 3, 4), position: str = "image", prior: bool = False, prior_input: bool = False) -> TextSegmenter:
    from monai.networks.nets import BasicUNet

    # the U-Net first: with the same seed it starts from exactly the weights of the `unet` model (paired comparisons)
    net = BasicUNet(spatial_dims=2, in_channels=in_channels, out_channels=num_classes, features=tuple(features), dropout=dropout)
    if hf_model:
        encoder: nn.Module = HFTextEncoder(hf_model, hf_freeze)
        if tokenizer is None:
            from ..text.tokenizer import HFTokenizer

            tokenizer = HFTokenizer(hf_model, max_length)
    else:
        tokenizer = tokenizer if tokenizer is not None else build_tokenizer([], "word", max_length)  # a placeholder until the run builds its own
        encoder = TransformerTextEncoder(len(tokenizer), text_dim, text_layers, text_heads, max(getattr(tokenizer, "max_length", max_length), 2))
    return TextSegmenter(net, num_classes, tokenizer, encoder, fusion, report_dropout, features, fuse_stages, position, prior, prior_input)


def text_unet(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False, tokenizer: Tokenizer | None = None,
              text_dim: int = 128, text_layers: int = 2, text_heads: int = 4, report_dropout: float = 0.25, hf_model: str | None = None,
              hf_freeze: bool = True, max_length: int = 128, features: Sequence[int] = UNET_FEATURES, fuse_stages: Sequence[int] = (1, 2, 3, 4),
              position: str = "image", prior: bool = False, prior_input: bool = False) -> TextSegmenter:
    """``unet`` + the report fused into every decoder stage (or ``fuse_stages``) by gated cross-attention (GuideDecoder-style).

    ``features``: BasicUNet's six widths (the ``unet`` model's by default, so the two compare at equal image capacity);
    ``position``: the attention's position code in the ``image``'s or the ``body``'s frame; ``prior``: a :class:`SitePrior` too;
    ``prior_input``: a site map fed into the U-Net (see :class:`TextSegmenter`)."""
    return _build("cross_attention", in_channels, num_classes, dropout, tokenizer, text_dim, text_layers, text_heads, report_dropout, hf_model, hf_freeze, max_length, features,
                  fuse_stages, position, prior, prior_input)


def text_unet_film(in_channels: int = 1, num_classes: int = 2, dropout: float = 0.0, small_input: bool = False, tokenizer: Tokenizer | None = None,
                   text_dim: int = 128, text_layers: int = 2, text_heads: int = 4, report_dropout: float = 0.25, hf_model: str | None = None,
                   hf_freeze: bool = True, max_length: int = 128, features: Sequence[int] = UNET_FEATURES, fuse_stages: Sequence[int] = (1, 2, 3, 4),
                   position: str = "image", prior: bool = False, prior_input: bool = False) -> TextSegmenter:
    """``unet`` + FiLM from the pooled report vector at every decoder stage (or ``fuse_stages``; the simpler comparison)."""
    return _build("film", in_channels, num_classes, dropout, tokenizer, text_dim, text_layers, text_heads, report_dropout, hf_model, hf_freeze, max_length, features,
                  fuse_stages, position, prior, prior_input)


text_unet.kind = text_unet_film.kind = "segmentation"  # type: ignore[attr-defined]
text_unet.inputs = text_unet_film.inputs = ("image", "text")  # type: ignore[attr-defined]
