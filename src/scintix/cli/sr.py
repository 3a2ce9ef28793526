"""``scintix sr train | evaluate | apply`` (and ``scintix sr RUN INPUT...`` = apply): SRGAN super-resolution (P3)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_sr_parser", "cmd_sr", "SR_COMMANDS"]

SR_COMMANDS = ("train", "evaluate", "apply")


def add_sr_parser(sub) -> None:
    p = sub.add_parser("sr", help="SRGAN x2/x4 super-resolution: train on real scans, PSNR/SSIM against bicubic, up-sample files (`scintix sr RUN INPUT`)")
    ssub = p.add_subparsers(dest="sr_command", required=True)
    t = ssub.add_parser("train", help="train on the training split of DATA (pairs: each scan and its down-sampled copy)")
    t.add_argument("data", help="manifest CSV or a folder holding one")
    t.add_argument("--out", required=True, help="SR run folder")
    t.add_argument("--recipe", default="quickstart", help="recipe whose data settings (image size = high resolution, normalisation, view, split) are used [quickstart]")
    t.add_argument("--scale", type=int, choices=(2, 4), help="shortcut for -o sr.scale=N")
    t.add_argument("--features", help="perceptual loss on this scintix classifier run's features (shortcut for -o sr.feature_run=RUN -o sr.perceptual_weight=0.1)")
    t.add_argument("--epochs", type=int, help="shortcut for -o sr.epochs=N")
    t.add_argument("-o", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="config override")
    t.add_argument("--resume", action="store_true")
    e = ssub.add_parser("evaluate", help="PSNR/SSIM of SR vs bicubic on held-out real images, paired, patient-level CIs")
    e.add_argument("run_dir")
    e.add_argument("--split", default="test", choices=("val", "test"))
    e.add_argument("--classifier", help="also this scintix classifier run's AUC on original, bicubic- and SR-restored images (same split, paired CIs)")
    a = ssub.add_parser("apply", help="up-sample image files by the run's scale")
    a.add_argument("run_dir")
    a.add_argument("inputs", nargs="+", help="image files")
    a.add_argument("--out", default="sr-out", help="output folder [sr-out]")


def cmd_sr(a: argparse.Namespace) -> int:
    if a.sr_command == "train":
        from ..config import load_config
        from ..synthesis.train_sr import evaluate_sr, train_sr

        if a.resume:
            run = train_sr(None, a.out, resume=True)
        else:
            over = [f"data.source={json.dumps(str(Path(a.data).resolve()))}", *a.overrides]
            over += [f"sr.scale={a.scale}"] if a.scale else []
            over += [f"sr.epochs={a.epochs}"] if a.epochs else []
            over += [f"sr.feature_run={json.dumps(str(Path(a.features).resolve()))}", "sr.perceptual_weight=0.1"] if a.features else []
            run = train_sr(load_config(a.recipe, over), a.out)
        a.run_dir, a.split, a.classifier = run, "test", None
        print(f"SR run folder: {run}")
    if a.sr_command in ("train", "evaluate"):
        from ..synthesis.train_sr import evaluate_sr

        r = evaluate_sr(a.run_dir, a.split)
        tag = " (SYNTHETIC)" if r["synthetic"] else ""
        print(f"x{r['scale']} on {r['images']} {a.split} images ({r['patients']} patients){tag}: PSNR SR {r['sr_psnr']:.2f} dB vs bicubic {r['bicubic_psnr']:.2f}; "
              f"SSIM SR {r['sr_ssim']:.4f} vs bicubic {r['bicubic_ssim']:.4f}")
        d, s = r["psnr_difference"], r["ssim_difference"]
        print(f"SR - bicubic: PSNR {d['value']:+.2f} dB [{d['ci_low']:+.2f}, {d['ci_high']:+.2f}], SSIM {s['value']:+.4f} [{s['ci_low']:+.4f}, {s['ci_high']:+.4f}]")
        if a.classifier:
            from ..synthesis.sr_downstream import classifier_on_sr

            c = classifier_on_sr(a.run_dir, a.classifier, a.split)
            for name, e in c["per_class"].items():
                if "note" in e:
                    print(f"classifier, {name}: {e['note']}")
                    continue
                diffs = ", ".join(f"{k.replace('_minus_', ' - ')} {v['value']:+.4f} [{v['ci_low']:+.4f}, {v['ci_high']:+.4f}]"
                                  for k, v in e.items() if k.endswith(("original", "bicubic")) and isinstance(v, dict))
                print(f"classifier AUC, {name} ({e['positives']} positive): original {e['auc_original']:.4f}, bicubic {e['auc_bicubic']:.4f}, SR {e['auc_sr']:.4f}; {diffs}")
        return 0
    from ..synthesis.train_sr import upsample_files

    rows = upsample_files(a.run_dir, a.inputs, a.out)
    for r in rows:
        print(f"{r['input']}: {r['output']} {r['size'][0]}x{r['size'][1]}" if r["output"] else f"{r['input']}: error: {r['error']}")
    return 0 if all(r["output"] for r in rows) else 2
