"""Training images/s: our loop vs a plain fp32 eager PyTorch loop, same model and data, each lever alone and all together.

    python benchmarks/speed.py [--model resnet18] [--steps 20] [--size 160 64] [--skip-accuracy]

Every arm trains the same model (ResNet-18, 1 channel, 2 classes) on the same
images (BS-80K anterior crops when present, else synthetic crops), batch 32,
AdamW, with the same random geometric augmentation, and is timed end to end:
data preparation, augmentation, forward, backward, step. Each arm runs in its
own fresh process. The levers:

  cache      preprocessing (decode, normalise, resize) once, in memory (scintix CachedDataset),
             instead of decoding and resizing each JPEG on every access
  batch_aug  one affine grid + grid_sample per batch (scintix BatchAugmenter) instead of
             MONAI's per-sample RandAffine in the data path
  bf16       autocast to bfloat16 (only where the CPU has native bf16; this one has avx512_bf16)
  nhwc       channels-last memory layout
  compile    torch.compile of the model (compile time reported apart)
  alloc      glibc allocator thresholds set before Python starts
  fused      the fused AdamW kernel (one pass over all parameters) instead of the foreach one
  nhwc_auto  channels-last only when timing both layouts on the model says it is faster (the loop's default)

"plain" has none; "ours" has what the training loop uses by default. Writes
benchmarks/results/speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import SHARED, WORK, write_result

LEVERS = ("cache", "batch_aug", "bf16", "nhwc", "nhwc_auto", "compile", "alloc", "fused")


def _images() -> list[str]:
    folder = SHARED / "bs80k-chest-region" / "images" / "ant"
    if folder.is_dir():
        return sorted(str(p) for p in folder.glob("*.jpg"))[:640]
    from scintix.data.synthetic import make_synthetic_dataset

    m = make_synthetic_dataset(WORK / "speed-synthetic", n_patients=320)
    from scintix.data.manifest import read_manifest

    return [r.path for r in read_manifest(m) if r.view == "ant"]


def arm(levers: set[str], model_name: str, steps: int, size: tuple[int, int], batch_size: int) -> dict:
    import numpy as np
    import torch

    from scintix.data.datasets import CachedDataset, Sample, preprocess
    from scintix.models import create_model
    from scintix.transforms.augment import AugmentConfig, Augmenter
    from scintix.transforms.batch_augment import BatchAugmenter

    torch.manual_seed(0)
    paths = _images()
    cfg = AugmentConfig()
    per_sample = None if "batch_aug" in levers else Augmenter(cfg)
    batched = BatchAugmenter(cfg) if "batch_aug" in levers else None
    samples = [Sample((p,), np.array(i % 2), str(i)) for i, p in enumerate(paths)]
    t0 = time.perf_counter()
    if "cache" in levers:
        # with batch_aug the items carry their seed and the batch is augmented at once
        ds = CachedDataset(samples, size, "percentile", (0.5, 99.5), Augmenter(cfg), seed=0, progress=False, batch_augment=batched is not None)
    else:

        class PlainDataset(torch.utils.data.Dataset):
            def __len__(self):
                return len(samples)

            def __getitem__(self, i):
                x = preprocess(samples[i].paths, size, "percentile", (0.5, 99.5))  # decode + resize every time
                item = {"image": torch.from_numpy(per_sample(x, i) if per_sample else x), "target": torch.as_tensor(samples[i].target), "index": i}
                if batched is not None:
                    item["aug_seed"] = i
                return item

        ds = PlainDataset()
    cache_s = time.perf_counter() - t0
    loader = torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0)
    model = create_model(model_name, in_channels=1, num_classes=2)
    crit = torch.nn.CrossEntropyLoss()
    amp = torch.bfloat16 if "bf16" in levers else None
    nhwc = "nhwc" in levers
    if "nhwc_auto" in levers:
        from scintix.runtime import choose_channels_last

        b0 = next(iter(loader))
        x0 = (batched(b0) if batched is not None else b0)["image"]

        def trial(m, x):
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                crit(m(x).float(), b0["target"]).backward()

        nhwc = choose_channels_last("auto", model, x0, trial)
    if nhwc:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3, fused=True) if "fused" in levers else torch.optim.AdamW(model.parameters(), 1e-3)
    fwd = model
    compile_s = 0.0
    if "compile" in levers:
        fwd = torch.compile(model)
    model.train()
    done, start, it = 0, None, 0
    while done < steps:
        for b in loader:
            if it == 3:  # warm-up steps (and compilation) excluded
                start = time.perf_counter()
            t_step = time.perf_counter()
            if batched is not None:
                b = batched(b)
            x, y = b["image"], b["target"]
            if nhwc:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=amp, enabled=amp is not None):
                loss = crit(fwd(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if it < 3 and "compile" in levers:
                compile_s += time.perf_counter() - t_step
            it += 1
            if it > 3:
                done += 1
            if done >= steps:
                break
    seconds = time.perf_counter() - start
    return {"levers": sorted(levers), "images_per_s": steps * batch_size / seconds, "channels_last": nhwc, "warmup_and_compile_s": round(compile_s, 1), "cache_s": round(cache_s, 1),
            "allocator_env": bool(os.environ.get("MALLOC_MMAP_THRESHOLD_"))}


def accuracy_check(epochs: int, with_bf16: bool) -> dict:
    """The same seeded run on the default job's SYNTHETIC crops with the old and the new paths: the fast path must not change the result."""
    import shutil

    from ddp_equivalence import _data

    from scintix.config import load_config
    from scintix.training.run import train_run

    arms = {"per_sample_aug_fp32": ["augment.batched=false", "train.precision=fp32"], "batched_aug_fp32": ["augment.batched=true", "train.precision=fp32"]}
    if with_bf16:
        arms["batched_aug_bf16"] = ["augment.batched=true", "train.precision=bf16"]
    out = {}
    for name, extra in arms.items():
        run_dir = WORK / f"speed-acc-{name}"
        shutil.rmtree(run_dir, ignore_errors=True)
        cfg = load_config("quickstart", [f"data.source={_data()}", f"train.epochs={epochs}", "train.progress=false", "train.tensorboard=false", "eval.n_bootstrap=500", *extra])
        start = time.perf_counter()
        train_run(cfg, run_dir)
        m = json.loads((run_dir / "eval" / "test" / "metrics.json").read_text())["per_class"]["abnormal"]
        v = json.loads((run_dir / "eval" / "val" / "metrics.json").read_text())["per_class"]["abnormal"]
        out[name] = {"val_auc": v["roc_auc"]["value"], "test_auc": m["roc_auc"]["value"], "test_auc_ci": [m["roc_auc"]["ci_low"], m["roc_auc"]["ci_high"]], "seconds": time.perf_counter() - start}
        print(name, out[name], flush=True)
    return out


ARMS = {  # label -> levers
    "plain": set(),
    "cache": {"cache"}, "batch_aug": {"batch_aug"}, "bf16": {"bf16"}, "nhwc": {"nhwc"}, "compile": {"compile"}, "alloc": {"alloc"},
    "fused": {"fused"},
    "ours": {"cache", "batch_aug", "bf16", "alloc", "fused", "nhwc_auto"},  # what `scintix run` does by default
    "ours+nhwc": {"cache", "batch_aug", "bf16", "alloc", "fused", "nhwc"},
    "ours+compile": {"cache", "batch_aug", "bf16", "alloc", "fused", "nhwc_auto", "compile"},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--accuracy-epochs", type=int, default=8)
    ap.add_argument("--bf16-check", action="store_true", help="also train with CPU bf16 autocast in the accuracy check")
    ap.add_argument("--skip-accuracy", action="store_true")
    ap.add_argument("--model", default="resnet18")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--size", type=int, nargs=2, default=(160, 64))
    ap.add_argument("--arms", nargs="*", default=list(ARMS))
    ap.add_argument("--repeats", type=int, default=3, help="runs per arm, interleaved; the median is reported")
    ap.add_argument("--arm", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.arm is not None:
        print(json.dumps(arm(set(filter(None, a.arm.split(","))), a.model, a.steps, tuple(a.size), a.batch)))
        return
    import numpy as np

    from scintix.runtime import ALLOCATOR_ENV, cpu_has_native_bf16

    base_env = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    runs: dict[str, list[dict]] = {k: [] for k in a.arms}
    for rep in range(a.repeats):  # arms interleaved, so a slow minute of the machine hits all of them alike
        for label in a.arms:
            levers = ARMS[label]
            if "bf16" in levers and not cpu_has_native_bf16():
                continue
            env = {**base_env, **ALLOCATOR_ENV} if "alloc" in levers else base_env
            cmd = [sys.executable, __file__, "--arm", ",".join(sorted(levers)), "--model", a.model, "--steps", str(a.steps), "--batch", str(a.batch), "--size", *map(str, a.size)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if out.returncode:
                runs[label].append({"levers": sorted(levers), "error": out.stderr.strip().splitlines()[-1][:300]})
            else:
                runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(rep, label, runs[label][-1], flush=True)
    results = {}
    for label, rs in runs.items():
        ok = [r for r in rs if "images_per_s" in r]
        if ok:
            results[label] = {**ok[0], "images_per_s": float(np.median([r["images_per_s"] for r in ok])), "images_per_s_runs": [r["images_per_s"] for r in ok]}
        elif rs:
            results[label] = rs[0]
    plain = results["plain"]["images_per_s"]
    payload = {
        "model": a.model, "size": list(a.size), "batch": a.batch, "steps_timed": a.steps, "repeats": a.repeats, "cpu_threads": os.cpu_count(), "native_bf16": cpu_has_native_bf16(),
        "data": "BS-80K anterior crops" if (SHARED / "bs80k-chest-region").is_dir() else "synthetic crops",
        "arms": results,
        "speedup_vs_plain": {k: v["images_per_s"] / plain for k, v in results.items() if "images_per_s" in v},
        "ratio_end_to_end": results["ours"]["images_per_s"] / plain if "images_per_s" in results.get("ours", {}) else None,
        "target": ">= 2x end to end",
    }
    if not a.skip_accuracy:
        payload["accuracy_check_synthetic"] = accuracy_check(a.accuracy_epochs, a.bf16_check)
    path = write_result("speed", payload)
    print(json.dumps(payload["speedup_vs_plain"], indent=1), "->", path)


if __name__ == "__main__":
    main()
