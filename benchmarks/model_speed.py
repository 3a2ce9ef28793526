"""Train and inference images/s of every registered model at 256x256 and 1024x256, plain vs fast path.

    python benchmarks/model_speed.py [--models resnet18 vgg16 ...] [--sizes 256x256 1024x256] [--batch 2] [--seconds 3]

plain: fp32, NCHW, eager, default glibc allocator (its own process).
fast:  allocator thresholds set before Python starts (its own process), each
       model timed in NCHW and channels-last, bf16 autocast only where the
       CPU has native bf16; "best" is what ``train.channels_last=auto`` keeps.
Each measurement: one warm-up step, then steps until ``--seconds`` have passed
(at least one). Big models at 1024x256 get few steps on 2 cores: the numbers
are indicative, and the file says how many steps each one took.
Writes benchmarks/results/model_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from _common import write_result


def _time(fn, seconds: float) -> tuple[float, int]:
    fn()  # warm-up
    start, n = time.perf_counter(), 0
    while n == 0 or time.perf_counter() - start < seconds:
        fn()
        n += 1
    return (time.perf_counter() - start) / n, n


def measure(names: list[str], sizes: list[tuple[int, int]], batch: int, seconds: float, layouts: list[str]) -> list[dict]:
    import torch

    from scintix.models import create_model
    from scintix.runtime import autocast, resolve_precision

    device = torch.device("cpu")
    amp = resolve_precision("auto", device) if os.environ.get("MALLOC_MMAP_THRESHOLD_") else None
    rows = []
    for name in names:
        for size in sizes:
            for layout in layouts:
                torch.manual_seed(0)
                model = create_model(name, in_channels=1, num_classes=2)
                x = torch.randn(batch, 1, *size)
                y = torch.randint(0, 2, (batch,))
                if layout == "nhwc":
                    model = model.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                opt = torch.optim.SGD(model.parameters(), lr=1e-3)

                def train_step():
                    with autocast(device, amp):
                        loss = torch.nn.functional.cross_entropy(model(x).float(), y)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()

                model.train()
                t_train, n_train = _time(train_step, seconds)
                model.eval()

                def infer():
                    with torch.no_grad(), autocast(device, amp):
                        model(x)

                t_inf, n_inf = _time(infer, seconds)
                rows.append({"model": name, "size": f"{size[0]}x{size[1]}", "layout": layout, "autocast": str(amp), "train_img_s": batch / t_train,
                             "infer_img_s": batch / t_inf, "train_steps": n_train, "infer_steps": n_inf})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", nargs="*")
    ap.add_argument("--sizes", nargs="*", default=["256x256", "1024x256"])
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--arm", choices=["plain", "fast"], help=argparse.SUPPRESS)
    a = ap.parse_args()
    from scintix.models import list_models

    names = a.models or list_models()
    sizes = [tuple(int(v) for v in s.split("x")) for s in a.sizes]
    if a.arm:
        rows = measure(names, sizes, a.batch, a.seconds, ["nchw"] if a.arm == "plain" else ["nchw", "nhwc"])
        print("RESULT " + json.dumps(rows))
        return
    from scintix.runtime import ALLOCATOR_ENV

    base = {k: v for k, v in os.environ.items() if k not in ALLOCATOR_ENV}
    arms = {}
    for arm, env in (("plain", base), ("fast", {**base, **ALLOCATOR_ENV})):
        cmd = [sys.executable, __file__, "--arm", arm, "--batch", str(a.batch), "--seconds", str(a.seconds), "--models", *names, "--sizes", *a.sizes]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
        arms[arm] = json.loads(next(ln for ln in out.splitlines() if ln.startswith("RESULT "))[7:])
    table = []
    for p in arms["plain"]:
        key = (p["model"], p["size"])
        fast = {r["layout"]: r for r in arms["fast"] if (r["model"], r["size"]) == key}
        best = max(fast.values(), key=lambda r: r["train_img_s"])
        table.append({
            "model": p["model"], "size": p["size"], "plain_train_img_s": p["train_img_s"], "plain_infer_img_s": p["infer_img_s"],
            "fast_nchw_train_img_s": fast["nchw"]["train_img_s"], "fast_nhwc_train_img_s": fast["nhwc"]["train_img_s"],
            "fast_nchw_infer_img_s": fast["nchw"]["infer_img_s"], "fast_nhwc_infer_img_s": fast["nhwc"]["infer_img_s"],
            "best_layout_train": best["layout"], "train_ratio": best["train_img_s"] / p["train_img_s"],
            "infer_ratio": max(fast["nchw"]["infer_img_s"], fast["nhwc"]["infer_img_s"]) / p["infer_img_s"],
            "channels_last_hurts_train": fast["nhwc"]["train_img_s"] < fast["nchw"]["train_img_s"],
            "steps": {"plain_train": p["train_steps"], "fast_nhwc_train": fast["nhwc"]["train_steps"]},
        })
    path = write_result("model_speed", {"batch": a.batch, "seconds_per_measurement": a.seconds, "autocast": arms["fast"][0]["autocast"], "rows": table})
    for r in table:
        print(f"{r['model']:<20}{r['size']:>10} plain {r['plain_train_img_s']:7.2f} img/s  best({r['best_layout_train']}) x{r['train_ratio']:.2f}  infer x{r['infer_ratio']:.2f}")
    print(path)


if __name__ == "__main__":
    main()
