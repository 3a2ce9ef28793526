"""``scintix gan train | sample | quality``: generative augmentation (:mod:`scintix.synthesis` does the work)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_gan_parser", "cmd_gan", "parse_per_class"]


def add_gan_parser(sub) -> None:
    p = sub.add_parser("gan", help="conditional DCGAN: train on a manifest's training split, sample a dataset of generated images, measure their quality")
    gsub = p.add_subparsers(dest="gan_command", required=True)
    t = gsub.add_parser("train", help="train a class-conditional DCGAN (gan.* settings) on the training split of DATA")
    t.add_argument("data", help="manifest CSV or a folder holding one (its training split only is used)")
    t.add_argument("--out", required=True, help="GAN run folder")
    t.add_argument("--recipe", default="quickstart", help="recipe whose data settings (image size, normalisation, view, split) the GAN uses [quickstart]")
    t.add_argument("--epochs", type=int, help="shortcut for -o gan.epochs=N")
    t.add_argument("--seed", type=int, help="shortcut for -o train.seed=N")
    t.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override, e.g. -o gan.base_channels=16")
    t.add_argument("--resume", action="store_true", help="continue the GAN run in --out from its last checkpoint")
    s = gsub.add_parser("sample", help="write generated images + a manifest (generated=1, provenance) for data.generated")
    s.add_argument("run_dir", help="a GAN run folder")
    s.add_argument("--out", required=True, help="folder for images/ and manifest.csv")
    s.add_argument("--n", type=int, help="images in all, split equally over the classes")
    s.add_argument("--per-class", nargs="+", default=[], metavar="CLASS=N", help="images per class, e.g. abnormal=200 normal=50")
    s.add_argument("--seed", type=int, default=0, help="noise seed [0]")
    s.add_argument("--device", default="auto")
    s.add_argument("--sr", help="a `scintix sr` run: up-sample every generated image with it (P3: DCGAN, then SRGAN)")
    q = gsub.add_parser("quality", help="FID and KID per class (features of a scintix classifier) and the nearest training image of each generated one")
    q.add_argument("run_dir", help="the GAN run folder (its training split is the reference)")
    q.add_argument("generated", help="a folder written by `scintix gan sample`")
    q.add_argument("--features", required=True, help="a trained scintix classifier run whose pooled features are compared")
    q.add_argument("--out", help="folder for quality.json and nearest.html [<generated>/quality]")


def parse_per_class(items: list[str], n: int | None, classes: list[str]) -> dict[str, int]:
    """``["a=3", "b=2"]`` (or ``n`` split equally over ``classes``) -> ``{"a": 3, "b": 2}``."""
    if items and n is not None:
        raise ValueError("give --n or --per-class, not both")
    if not items:
        if n is None or n < 1:
            raise ValueError("give --n N (at least 1) or --per-class CLASS=N ...")
        base, extra = divmod(n, len(classes))
        return {c: base + (i < extra) for i, c in enumerate(classes)}
    out = {}
    for it in items:
        name, sep, k = it.partition("=")
        if not sep or not k.strip().isdigit():
            raise ValueError(f"--per-class {it!r}: CLASS=N with N a whole number")
        out[name.strip()] = int(k)
    return out


def cmd_gan(a: argparse.Namespace) -> int:
    if a.gan_command == "train":
        from ..config import load_config
        from ..synthesis.train_gan import train_gan

        if a.resume:
            run = train_gan(None, a.out, resume=True)
        else:
            overrides = [f"data.source={json.dumps(str(Path(a.data).resolve()))}", *a.overrides]
            overrides += [f"gan.epochs={a.epochs}"] if a.epochs else []
            overrides += [f"train.seed={a.seed}"] if a.seed is not None else []
            run = train_gan(load_config(a.recipe, overrides), a.out)
        print(f"GAN run folder: {run} (samples/ grids per epoch, checkpoints/last.pt)")
        return 0
    if a.gan_command == "sample":
        from ..synthesis.sample import load_generator, sample_gan

        _, _, meta = load_generator(a.run_dir)
        manifest = sample_gan(a.run_dir, a.out, parse_per_class(a.per_class, a.n, meta["classes"]), a.seed, a.device, a.sr)
        print(f"generated images: {manifest} (add to a classifier run with -o data.generated=[{manifest}]: training rows only)")
        return 0
    from ..synthesis.quality import quality_report

    res = quality_report(a.run_dir, a.generated, a.features, a.out)
    for cls, m in res["per_class"].items():
        print(f"{cls}: FID {m['fid']:.2f}, KID {m['kid']:.4f} ({m['generated']} generated vs {m['real']} real training images)")
    print(f"memorisation: median nearest-training distance {res['nearest']['median_distance']:.4f} (real-to-real {res['nearest']['real_median_distance']:.4f}); {res['html']}")
    return 0
