"""Is an explanation faithful to the model? Deletion and insertion curves (Petsiuk et al. 2018).

Pixels are ranked by the map. *Deletion* replaces the top fraction with a
blurred copy of the image and follows the target probability down: a faithful
map makes it fall fast (low area under the curve). *Insertion* starts from the
blurred image and restores the top fraction: a faithful map makes it rise
fast (high area). Blurring rather than blacking out keeps the images closer to
what the model was trained on (the concern ROAD raises). A random ranking is
the reference every method should beat; ``insertion - deletion`` is the
one-number summary (higher is better).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from .cam import target_probability

__all__ = ["deletion_insertion", "random_maps"]


def random_maps(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """A random ranking, the baseline for the scores."""
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@torch.no_grad()
def deletion_insertion(model: torch.nn.Module, x: torch.Tensor, maps: np.ndarray, targets: np.ndarray, task: str, steps: int = 10, blur_sigma: float | None = None) -> dict[str, np.ndarray]:
    """Deletion and insertion AUCs per image (``(B,)`` each, in [0, 1]).

    Args:
        x: the model inputs ``(B, C, H, W)``.
        maps: ``(B, H, W)`` saliency, higher = more important.
        targets: ``(B,)`` the class whose probability is followed.
        steps: fractions 0, 1/steps, ..., 1 of the pixels.
    """
    model.eval()
    b, c, h, w = x.shape
    sigma = blur_sigma if blur_sigma is not None else max(h, w) / 16
    xs = x.detach().cpu().numpy()
    blurred = torch.from_numpy(np.stack([[gaussian_filter(ch, sigma) for ch in img] for img in xs]).astype(np.float32)).to(x.device)
    fractions = np.linspace(0, 1, steps + 1)
    out = {"deletion": np.zeros(b), "insertion": np.zeros(b)}
    for i in range(b):
        order = np.argsort(-maps[i].ravel(), kind="stable")
        rank = np.empty(h * w, dtype=np.int64)
        rank[order] = np.arange(h * w)
        # masks[k] is True for the top fraction k of the pixels
        masks = torch.from_numpy(np.stack([(rank < round(f * h * w)).reshape(h, w) for f in fractions])).to(x.device).unsqueeze(1)
        img, blur = x[i : i + 1].float(), blurred[i : i + 1]
        deleted = torch.where(masks, blur, img)
        inserted = torch.where(masks, img, blur)
        t = torch.full((len(fractions),), int(targets[i]), dtype=torch.long, device=x.device)
        for name, batch in (("deletion", deleted), ("insertion", inserted)):
            p = target_probability(model(batch).float(), t, task).cpu().numpy()
            out[name][i] = float(np.trapezoid(p, fractions)) if hasattr(np, "trapezoid") else float(np.trapz(p, fractions))
    return out
