"""Class activation maps for every model in the zoo, as small subclasses of one base.

Each method returns, for a batch ``(B, C, H, W)``, maps ``(B, H, W)`` at the
input's size, non-negative and min-max normalised per image to [0, 1]. The
target layer comes from the model interface (``model.cam_layers``, else
``model.cam_layer``) unless given. Everything is computed per sample (no batch
statistics: the model runs in eval mode), so a batch gives exactly the
per-image maps -- unlike MONAI's Grad-CAM++, which mixes samples for batch > 1.

Several activations, one map: an ensemble names each member's layer
(``cam_layers``), and test-time augmentation runs its model's layer once per
transformed copy. Every activation of every hooked layer in the forward pass
gets its own map (for Grad-CAM, from the gradient of the *wrapper's* score),
each is upsampled, clipped and normalised, and the maps are averaged, as
pytorch-grad-cam aggregates several target layers. For a binary task that is
exactly the mean of the members' (or copies') own normalised Grad-CAM maps:
the gradient of the averaged log-odds with respect to one member's activations
is a positive multiple of that member's own log-odds gradient (tested).
A segmenter that infers by sliding windows is explained in one whole-image pass.

What is explained, per task (``score``):

* binary -- the log-odds ``z1 - z0`` of the positive class (target 1) or its
  negative (target 0);
* multi-class -- the target class's logit (default: the predicted class);
* multi-label -- the target label's logit, i.e. its log-odds (default: the most
  probable label);
* segmentation -- the target class's logits summed over the pixels predicted
  as that class (default: class 1, the lesion).

Methods: :class:`GradCAM` (Selvaraju et al. 2017), :class:`GradCAMPlusPlus`
(Chattopadhay et al. 2018), and two gradient-free ones, :class:`ScoreCAM`
(Wang et al. 2020; the ``max_channels`` most active channels, to stay
affordable on a CPU) and :class:`OcclusionCAM` (Zeiler & Fergus 2014: the
score drop when a patch is blanked).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.ensemble import cam_layers
from ..tasks import get_task

__all__ = ["BaseCAM", "GradCAM", "GradCAMPlusPlus", "ScoreCAM", "OcclusionCAM", "CAM_METHODS", "target_score", "default_targets", "normalize_maps"]


def target_score(logits: torch.Tensor, targets: torch.Tensor, task) -> torch.Tensor:
    """The scalar per sample that a CAM explains (see module doc): ``(B,)``; the task decides."""
    return get_task(task).cam_score(logits, targets)


def target_probability(logits: torch.Tensor, targets: torch.Tensor, task) -> torch.Tensor:
    """The target's probability (softmax, or sigmoid for multi-label; segmentation: its mean over the image): ``(B,)``."""
    return get_task(task).cam_probability(logits, targets)


def default_targets(logits: torch.Tensor, task) -> torch.Tensor:
    """Binary: the positive class; otherwise the top class (multi-label: the most probable label; segmentation: the lesion class)."""
    return get_task(task).cam_default_targets(logits)


def normalize_maps(cam: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each map of ``(B, H, W)`` to [0, 1]; a flat map becomes all zeros."""
    flat = cam.flatten(1)
    lo, hi = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
    out = (flat - lo) / (hi - lo).clamp_min(1e-12)
    out = torch.where((hi - lo) > 1e-12, out, torch.zeros_like(out))
    return out.view_as(cam)


class BaseCAM:
    """Hooks ``target_layer`` (default: ``model.cam_layers`` or ``model.cam_layer``) and turns its activations into maps.

    Subclasses implement :meth:`maps_from`, returning raw ``(B, h, w)`` maps
    at the layer's resolution (or at input size) for one activation; the base
    upsamples, clips at zero and normalises each, and averages them when the
    forward pass gave several (see the module doc).
    """

    needs_gradients = True

    def __init__(self, model: nn.Module, target_layer: str | nn.Module | Sequence[str | nn.Module] | None = None, task: str = "binary") -> None:
        self.model = model
        self.task = task
        names = cam_layers(model) if target_layer is None else target_layer
        if target_layer is None and not names:
            raise ValueError("no target layer given and the model has no cam_layer")
        names = [names] if isinstance(names, (str, nn.Module)) else list(names)
        self.layers = [model.get_submodule(n) if isinstance(n, str) else n for n in names]
        self.layer = self.layers[0]

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits and every activation of the hooked layers, in call order."""
        store: list[torch.Tensor] = []
        handles = [layer.register_forward_hook(lambda _m, _i, out: store.append(out)) for layer in self.layers]
        windows = [m for m in self.model.modules() if getattr(m, "roi_size", None) is not None]
        saved = [m.roi_size for m in windows]
        try:
            for m in windows:  # one whole-image pass: per-window activations would not map onto the image
                m.roi_size = None
            logits = self.model(x)
        finally:
            for h in handles:
                h.remove()
            for m, roi in zip(windows, saved):
                m.roi_size = roi
        if not store:
            raise ValueError("the CAM's target layer was not called in the forward pass")
        return logits, store

    def __call__(self, x: torch.Tensor, targets: int | Sequence[int] | torch.Tensor | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Maps ``(B, H, W)`` in [0, 1] and the targets used ``(B,)``."""
        self.model.eval()
        x = x.float()
        with torch.set_grad_enabled(self.needs_gradients):
            logits, acts = self._forward(x)
            if targets is None:
                t = default_targets(logits.detach(), self.task)
            else:
                t = torch.as_tensor(targets, dtype=torch.long, device=x.device).view(-1).expand(len(x)).clone()
            maps = [self._to_input(self.maps_from(x, logits, a, t), x) for a in acts]
        self.logits = logits.detach()  # the pass's own prediction: a caller that needs both makes one pass
        out = maps[0] if len(maps) == 1 else normalize_maps(torch.stack(maps).mean(0))
        return out.cpu().numpy(), t.cpu().numpy()

    @staticmethod
    def _to_input(raw: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """A raw map at the input's size, clipped at zero, normalised per image."""
        raw = raw.detach().float()  # bf16 under autocast
        if raw.shape[-2:] != x.shape[-2:]:
            raw = F.interpolate(raw.unsqueeze(1), size=x.shape[-2:], mode="bilinear", align_corners=False).squeeze(1)
        return normalize_maps(raw.clamp_min(0))

    def maps_from(self, x: torch.Tensor, logits: torch.Tensor, acts: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class GradCAM(BaseCAM):
    """Channel weights = spatial mean of the score's gradient."""

    def maps_from(self, x, logits, acts, targets):
        grads = torch.autograd.grad(target_score(logits, targets, self.task).sum(), acts, retain_graph=True)[0]  # kept for the next activation
        weights = grads.mean(dim=(2, 3), keepdim=True)
        return (weights * acts).sum(1)


class GradCAMPlusPlus(BaseCAM):
    """Channel weights = positive gradients weighted by the Grad-CAM++ alphas (per sample)."""

    def maps_from(self, x, logits, acts, targets):
        grads = torch.autograd.grad(target_score(logits, targets, self.task).sum(), acts, retain_graph=True)[0]
        g2, g3 = grads.pow(2), grads.pow(3)
        sum_a = acts.sum(dim=(2, 3), keepdim=True)  # per sample and channel: no mixing across the batch
        alpha = g2 / (2 * g2 + sum_a * g3).where((2 * g2 + sum_a * g3) != 0, torch.ones_like(g2))
        alpha = torch.where(grads != 0, alpha, torch.zeros_like(alpha))
        weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
        return (weights * acts).sum(1)


class ScoreCAM(BaseCAM):
    """Gradient-free: each channel's upsampled map masks the input; its weight is the target probability then.

    Only the ``max_channels`` channels with the largest mean activation are
    used (all of ResNet-50's 2048 would take 2048 forward passes per image).
    """

    needs_gradients = False

    def __init__(self, model, target_layer=None, task="binary", max_channels: int = 32, batch_size: int = 32) -> None:
        super().__init__(model, target_layer, task)
        self.max_channels, self.batch_size = max_channels, batch_size

    @torch.no_grad()
    def maps_from(self, x, logits, acts, targets):
        b, k = acts.shape[:2]
        top = acts.mean(dim=(2, 3)).topk(min(self.max_channels, k), dim=1).indices  # (B, K')
        out = []
        for i in range(b):
            a = acts[i, top[i]]  # (K', h, w)
            up = F.interpolate(a.unsqueeze(1), size=x.shape[-2:], mode="bilinear", align_corners=False).squeeze(1)
            up = normalize_maps(up)
            scores = []
            for s in range(0, len(up), self.batch_size):
                masked = x[i : i + 1] * up[s : s + self.batch_size].unsqueeze(1)
                lg = self.model(masked)
                scores.append(target_probability(lg, targets[i].expand(len(masked)), self.task))
            w = torch.softmax(torch.cat(scores), dim=0)
            out.append((w.view(-1, 1, 1) * up).sum(0))
        return torch.stack(out)


class OcclusionCAM(BaseCAM):
    """Gradient-free: the drop of the target probability when a patch is set to the image mean.

    ``patch`` is a fraction of the image side (a ``grid x grid`` layout with
    half-patch strides); the map is the mean drop over the patches covering
    each pixel.
    """

    needs_gradients = False

    def __init__(self, model, target_layer=None, task="binary", grid: int = 8, batch_size: int = 64) -> None:
        super().__init__(model, target_layer if target_layer is not None else "", task)
        self.grid, self.batch_size = grid, batch_size

    def _forward(self, x):
        return self.model(x), [x]  # no layer needed

    @torch.no_grad()
    def maps_from(self, x, logits, acts, targets):
        b, c, h, w = x.shape
        ph, pw = max(1, int(np.ceil(h / self.grid))), max(1, int(np.ceil(w / self.grid)))
        sy, sx = max(1, ph // 2), max(1, pw // 2)
        base = target_probability(logits, targets, self.task)
        fill = x.mean(dim=(2, 3), keepdim=True)
        boxes = [(y0, x0) for y0 in range(0, max(h - ph, 0) + 1, sy) for x0 in range(0, max(w - pw, 0) + 1, sx)]
        out = torch.zeros(b, h, w, device=x.device)
        cover = torch.zeros(h, w, device=x.device)
        for y0, x0 in boxes:
            cover[y0 : y0 + ph, x0 : x0 + pw] += 1
        for i in range(b):
            for s in range(0, len(boxes), self.batch_size):
                chunk = boxes[s : s + self.batch_size]
                xs = x[i : i + 1].repeat(len(chunk), 1, 1, 1)
                for j, (y0, x0) in enumerate(chunk):
                    xs[j, :, y0 : y0 + ph, x0 : x0 + pw] = fill[i]
                drop = base[i] - target_probability(self.model(xs), targets[i].expand(len(chunk)), self.task)
                for j, (y0, x0) in enumerate(chunk):
                    out[i, y0 : y0 + ph, x0 : x0 + pw] += drop[j]
        return out / cover.clamp_min(1)


CAM_METHODS: dict[str, type[BaseCAM]] = {"gradcam": GradCAM, "gradcam++": GradCAMPlusPlus, "scorecam": ScoreCAM, "occlusion": OcclusionCAM}
