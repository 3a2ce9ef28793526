"""Training images/s: our loop vs a plain fp32 eager PyTorch loop, same model and data, one run.

    python benchmarks/speed.py [--model resnet18] [--steps 30] [--size 160 64]

Both loops train the same model on the same images with the same MONAI
augmentation, batch size and optimizer. They differ only where our loop
differs from a plain one:
  plain: a Dataset that decodes and resizes each JPEG on every access, NCHW,
         fp32, default glibc allocator;
  ours:  preprocessing cached once (scintix CachedDataset), channels-last when
         the auto check picks it, autocast only where the CPU has native bf16,
         glibc allocator thresholds set before Python starts.
A second comparison ("compute only") feeds both the same in-memory tensors, so
it isolates layout + allocator. Each arm runs in its own fresh process.
Writes benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import SHARED, WORK, write_result


def _images() -> list[str]:
    folder = SHARED / "bs80k-chest-region" / "images" / "ant"
    if folder.is_dir():
        return sorted(str(p) for p in folder.glob("*.jpg"))[:640]
    from scintix.data.synthetic import make_synthetic_dataset

    m = make_synthetic_dataset(WORK / "speed-synthetic", n_patients=320)
    from scintix.data.manifest import read_manifest

    return [r.path for r in read_manifest(m) if r.view == "ant"]


def arm(mode: str, model_name: str, steps: int, size: tuple[int, int], batch: int, data_in_memory: bool) -> dict:
    import numpy as np
    import torch

    from scintix.data.datasets import CachedDataset, Sample, preprocess
    from scintix.models import create_model
    from scintix.training.perf import autocast, choose_channels_last, resolve_precision
    from scintix.transforms.augment import AugmentConfig, Augmenter

    torch.manual_seed(0)
    paths = _images()
    aug = Augmenter(AugmentConfig())
    samples = [Sample((p,), np.array(i % 2), str(i)) for i, p in enumerate(paths)]
    if mode == "ours" or data_in_memory:
        ds = CachedDataset(samples, size, "percentile", (0.5, 99.5), aug, seed=0)
    else:

        class PlainDataset(torch.utils.data.Dataset):
            def __len__(self):
                return len(samples)

            def __getitem__(self, i):
                x = preprocess(samples[i].paths, size, "percentile", (0.5, 99.5))  # decode + resize every time
                return {"image": torch.from_numpy(aug(x, i)), "target": torch.as_tensor(samples[i].target), "index": i}

        ds = PlainDataset()
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, drop_last=True, num_workers=0)
    model = create_model(model_name, in_channels=1, num_classes=2)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    crit = torch.nn.CrossEntropyLoss()
    device = torch.device("cpu")
    amp = resolve_precision("auto", device) if mode == "ours" else None
    cl = False
    if mode == "ours":
        b0 = next(iter(loader))
        x0, y0 = b0["image"], b0["target"]

        def step(m, x):
            with autocast(device, amp):
                crit(m(x).float(), y0).backward()

        cl = choose_channels_last("auto", model, x0, step)
        if cl:
            model = model.to(memory_format=torch.channels_last)
    model.train()
    done, start, it = 0, None, 0
    while done < steps:
        for batch in loader:
            x, y = batch["image"], batch["target"]
            if it == 3:  # warm-up steps excluded
                start = time.perf_counter()
            if cl:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                loss = crit(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            it += 1
            if it > 3:
                done += 1
            if done >= steps:
                break
    seconds = time.perf_counter() - start
    return {"mode": mode, "images_per_s": steps * batch / seconds, "channels_last": cl, "autocast": str(amp), "allocator_env": bool(os.environ.get("MALLOC_MMAP_THRESHOLD_"))}


def accuracy_check(epochs: int, with_bf16: bool) -> dict:
    """Same seeded run with each numeric path; the fast path must not change the result."""
    import shutil

    from scintix.config import load_config
    from scintix.training.run import train_run

    arms = {"fp32_nchw": ["train.precision=fp32", "train.channels_last=false"], "fp32_nhwc": ["train.precision=fp32", "train.channels_last=true"]}
    if with_bf16:
        arms["bf16_nhwc"] = ["train.precision=bf16", "train.channels_last=true"]
    out = {}
    for name, extra in arms.items():
        run_dir = WORK / f"speed-acc-{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = load_config("quickstart", [f"train.epochs={epochs}", "train.progress=false", "train.tensorboard=false", "model.name=small_cnn",
                                         "data.image_size=[96,48]", "synthetic.n_patients=240", "eval.n_bootstrap=200", *extra])
        start = time.perf_counter()
        train_run(cfg, run_dir)
        m = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())["per_class"]["abnormal"]
        v = json.loads((run_dir / "eval" / "val" / "metrics.json").read_text())["per_class"]["abnormal"]
        out[name] = {"val_auc": v["roc_auc"]["value"], "test_auc": m["roc_auc"]["value"], "test_auc_ci": [m["roc_auc"]["ci_low"], m["roc_auc"]["ci_high"]], "seconds": time.perf_counter() - start}
        print(name, out[name], flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accuracy-epochs", type=int, default=8)
    ap.add_argument("--bf16-check", action="store_true", help="also train with CPU bf16 autocast (slow without native bf16)")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, nargs=2, default=(160, 64))
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    ap.add_argument("--in-memory", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.arm:
        print(json.dumps(arm(a.arm, a.model, a.steps, tuple(a.size), a.batch, a.in_memory)))
        return
    from scintix.training.perf import ALLOCATOR_ENV

    base_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    tuned_env = {**base_env, **ALLOCATOR_ENV}
    results = {}
    for label, mode, env, in_memory in (
        ("plain", "plain", base_env, False),
        ("ours", "ours", tuned_env, False),
        ("plain_compute_only", "plain", base_env, True),
    ):
        cmd = [sys.executable, __file__, "--arm", mode, "--model", a.model, "--steps", str(a.steps), "--batch", str(a.batch), "--size", *map(str, a.size)]
        if in_memory:
            cmd.append("--in-memory")
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
        results[label] = json.loads(out.stdout.strip().splitlines()[-1])
        print(label, results[label], flush=True)
    payload = {
        "model": a.model, "size": list(a.size), "batch": a.batch, "steps_timed": a.steps, "cpu_threads": os.cpu_count(),
        "data": "BS-80K anterior crops" if (SHARED / "bs80k-chest-region").is_dir() else "synthetic crops",
        "arms": results,
        "ratio_end_to_end": results["ours"]["images_per_s"] / results["plain"]["images_per_s"],
        "ratio_compute_only": results["ours"]["images_per_s"] / results["plain_compute_only"]["images_per_s"],
        "target": ">= 2x end to end",
    }
    if not a.skip_accuracy:
        payload["accuracy_check_synthetic"] = accuracy_check(a.accuracy_epochs, a.bf16_check)
    path = write_result("speed", payload)
    print(f"end-to-end {payload['ratio_end_to_end']:.2f}x, compute-only {payload['ratio_compute_only']:.2f}x -> {path}")


if __name__ == "__main__":
    main()
