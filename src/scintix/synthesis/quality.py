"""Quality of generated images, measured: FID and KID per class, and a memorisation check.

Feature extractor (stated, offline): the pooled features (``pre_logits``, the
input of the final linear layer) of a trained scintix classifier named by the
user, on images preprocessed as that classifier was trained. No ImageNet
Inception weights exist offline, and features of a model trained on the same
domain are the ones that see lesions. FIDs are comparable only between
generators measured with the same feature run.

- FID: Fréchet distance of Gaussians fitted to the two feature sets (MONAI's
  ``get_fid_score``); biased upwards for small sets.
- KID: unbiased squared MMD with the cubic polynomial kernel
  ``k(x, y) = (x.y / d + 1)^3`` (Bińkowski et al., 2018); ~0 for the same
  distribution at any size.
- Memorisation: for each generated image, the nearest training image of the
  generator (RMS pixel distance at the generator's size, intensities in
  [0, 1]); compared with each training image's distance to its nearest *other*
  training image. A generated image much closer to a training image than
  training images are to each other is a copy. ``nearest.html`` shows the
  closest pairs.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from .._atomic import atomic_path
from ..data.datasets import preprocess
from ..data.manifest import read_manifest
from ..runfolder import load_run, load_run_config

__all__ = ["fid", "kid", "nearest_distances", "classifier_features", "quality_report"]


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between feature sets ``(N, D)`` and ``(M, D)``; NaN with fewer than 2 rows in either."""
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    from monai.metrics.fid import get_fid_score

    return max(0.0, float(get_fid_score(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)).real))


def kid(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the kernel ``(x.y / d + 1)^3`` between ``(N, D)`` and ``(M, D)``; NaN with fewer than 2 rows."""
    n, m = len(a), len(b)
    if n < 2 or m < 2:
        return float("nan")
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = a.shape[1]
    kaa, kbb, kab = (a @ a.T / d + 1) ** 3, (b @ b.T / d + 1) ** 3, (a @ b.T / d + 1) ** 3
    return float((kaa.sum() - np.trace(kaa)) / (n * (n - 1)) + (kbb.sum() - np.trace(kbb)) / (m * (m - 1)) - 2 * kab.mean())


def pairwise_rms(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` RMS pixel distances between two sets of images ``(N, ...)`` (flattened)."""
    q = a.reshape(len(a), -1).astype(np.float64)
    r = b.reshape(len(b), -1).astype(np.float64)
    d2 = (q**2).sum(1)[:, None] + (r**2).sum(1)[None, :] - 2 * q @ r.T
    return np.sqrt(np.maximum(d2, 0) / q.shape[1])


def nearest_distances(queries: np.ndarray, reference: np.ndarray, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(index, rms distance)`` of each query's nearest reference image; images ``(N, ...)`` flattened."""
    d = pairwise_rms(queries, reference)
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    idx = d.argmin(1)
    return idx, d[np.arange(len(d)), idx]


@torch.no_grad()
def classifier_features(run_dir: str | Path, paths: list[str], batch: int = 64) -> np.ndarray:
    """Pooled features ``(N, D)`` of a trained classifier run on these image files (preprocessed as it was trained)."""
    run = load_run(run_dir)
    model, d = run.model, run.cfg.data
    if not hasattr(model, "pre_logits"):
        raise ValueError(f"{run_dir}: features need a classifier run (model {run.cfg.model.name} has no pooled features)")
    out = []
    for i in range(0, len(paths), batch):
        x = torch.from_numpy(np.stack([preprocess([p], tuple(d.image_size), d.normalize, tuple(d.percentiles)) for p in paths[i : i + batch]]))
        if x.shape[1] != (len(d.views) if d.views else 1):
            raise ValueError(f"{run_dir}: takes {len(d.views or [1])}-channel inputs; features are computed on single-view images")
        out.append(model.pre_logits(model.forward_features(x.to(run.device))).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def _gan_train_rows(gan_run: Path) -> list[tuple[str, str]]:
    """``(path, label names joined by ;)`` of the images the generator learned from: its training split, its view."""
    from ..data.prepare import prepare_data
    from ..tasks import get_task

    cfg = load_gan_data(gan_run)
    if cfg.data.views:
        raise ValueError(f"{gan_run}: generates stacked views {list(cfg.data.views)}; quality is measured on single-view generators")
    data = prepare_data(cfg, gan_run, write=False)
    task = get_task(cfg.data.task)
    return [(smp.paths[0], task.describe_target(smp.target, data.classes)) for smp in data.samples["train"]]


def quality_report(gan_run: str | Path, generated_dir: str | Path, feature_run: str | Path, out_dir: str | Path | None = None, pairs: int = 12) -> dict:
    """FID/KID per class (generated vs the generator's real training images) and the memorisation check; writes quality.json + nearest.html."""
    gan_run, generated_dir = Path(gan_run), Path(generated_dir)
    out_dir = Path(out_dir) if out_dir else generated_dir / "quality"
    gen = read_manifest(generated_dir / "manifest.csv")
    real = _gan_train_rows(gan_run)
    gcfg = load_gan_data(gan_run)
    size, norm, pct = tuple(gcfg.data.image_size), gcfg.data.normalize, tuple(gcfg.data.percentiles)
    feats_gen = classifier_features(feature_run, [r.path for r in gen])
    feats_real = classifier_features(feature_run, [p for p, _ in real])
    per_class = {}
    for cls in sorted({r.label for r in gen}):
        gi = [i for i, r in enumerate(gen) if r.label == cls]
        ri = [i for i, (_, lab) in enumerate(real) if cls in {s.strip() for s in lab.split(";")}]
        per_class[cls] = {"fid": fid(feats_gen[gi], feats_real[ri]), "kid": kid(feats_gen[gi], feats_real[ri]), "generated": len(gi), "real": len(ri)}
    pix_gen = np.stack([preprocess([r.path], size, norm, pct) for r in gen])
    pix_real = np.stack([preprocess([p], size, norm, pct) for p, _ in real])
    idx, dist = nearest_distances(pix_gen, pix_real)
    _, real_dist = nearest_distances(pix_real, pix_real, exclude_self=True)
    order = np.argsort(dist)[:pairs]
    html_path = _write_gallery(out_dir / "nearest.html", pix_gen, pix_real, idx, dist, order, float(np.median(real_dist)), [r.path for r in gen], [p for p, _ in real])
    res = {"feature_extractor": f"pooled features of classifier run {Path(feature_run).resolve()}", "generated": len(gen), "real_reference": f"{len(real)} training images of {gan_run}",
           "per_class": per_class,
           "nearest": {"metric": "RMS pixel distance in [0, 1] at the generator's image size", "median_distance": float(np.median(dist)), "min_distance": float(dist.min()),
                       "real_median_distance": float(np.median(real_dist)), "real_min_distance": float(real_dist.min()),
                       "closer_than_closest_real_pair": int((dist < real_dist.min()).sum())},
           "html": str(html_path)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "quality.json").write_text(json.dumps(res, indent=2))
    return res


def load_gan_data(gan_run: Path):
    meta = gan_run / "meta.json"
    if not meta.is_file() or json.loads(meta.read_text()).get("kind") != "gan":
        raise ValueError(f"{gan_run}: not a GAN run (no meta.json of kind 'gan')")
    return load_run_config(gan_run)


def _png(img: np.ndarray) -> str:
    import base64

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray((np.clip(img[0], 0, 1) * 255).round().astype(np.uint8)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _write_gallery(path: Path, gen, real, idx, dist, order, real_median: float, gen_paths, real_paths) -> Path:
    import html

    rows = "".join(
        f"<tr><td><img src='data:image/png;base64,{_png(gen[i])}'><br>{html.escape(Path(gen_paths[i]).name)}</td>"
        f"<td><img src='data:image/png;base64,{_png(real[idx[i]])}'><br>{html.escape(Path(real_paths[idx[i]]).name)}</td><td>{dist[i]:.4f}</td></tr>"
        for i in order)
    doc = (f"<!doctype html><meta charset='utf-8'><title>scintix: generated images nearest to training images</title>"
           f"<h1>Generated images closest to a training image</h1><p>RMS pixel distance (intensities in [0, 1]); for reference, the median distance "
           f"between a training image and its nearest other training image is {real_median:.4f}. A pair far below that is a copy.</p>"
           f"<table border=1 cellpadding=4><tr><th>generated</th><th>nearest training image</th><th>distance</th></tr>{rows}</table>")
    with atomic_path(path) as tmp:
        tmp.write_text(doc, encoding="utf-8")
    return path
