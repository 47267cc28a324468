#!/usr/bin/python3
"""The PyTorch side of bench/models.ts: inference latency of one model, one JSON line last.

  models.py --model deeplabv3_resnet50 --size 512x1024 --batch 1 --warmup 1 --iters 3 \
            --threads 2 --layout nchw|cl --precision fp32|bf16 --aux 0|1 --mode inference|no_grad

model.eval(); the input is randn(batch, 3, H, W) with seed 0; each call runs under
torch.inference_mode() (--mode no_grad: torch.no_grad(), as bench-ref/infer.py). --layout cl
converts the model and the input to channels_last; --precision bf16 wraps the call in
torch.cpu.amp.autocast(dtype=torch.bfloat16). --aux 0 (the default) builds no auxiliary head, as
our `load()` and mmseg's inference do (torchvision would run it in eval: --aux 1, +6% FLOPs for
the ResNets). FLOPs (2 x MACs of Conv2d/Linear) are counted by hooks during the first warm-up call.
Prints median/min/max ms over --iters timed calls after --warmup untimed ones, the first call's ms,
GFLOP, GFLOP/s (from the median), the model build time and this process's peak RSS (MiB).
"""
import contextlib
import os
import sys
import time

sys.dont_write_bytecode = True  # no bench/py/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

from common import FlopCounter, build_model, emit, parse_args, parse_size, peak_rss_mib, setup_threads, stats_ms  # noqa: E402


def main():
    a = parse_args(sys.argv[1:], {"model": "deeplabv3_resnet50", "size": "512", "batch": "1", "warmup": "1",
                                  "iters": "3", "threads": "2", "layout": "nchw", "precision": "fp32", "aux": "0",
                                  "mode": "inference", "seed": "0"})
    if a["layout"] not in ("nchw", "cl") or a["precision"] not in ("fp32", "bf16") or a["mode"] not in ("inference", "no_grad"):
        sys.exit("--layout nchw|cl, --precision fp32|bf16, --mode inference|no_grad")
    threads, batch, warmup, iters = int(a["threads"]), int(a["batch"]), int(a["warmup"]), int(a["iters"])
    setup_threads(threads)
    torch.manual_seed(int(a["seed"]))
    h, w = parse_size(a["size"])
    fmt = torch.channels_last if a["layout"] == "cl" else torch.contiguous_format

    t0 = time.perf_counter()
    model = build_model(a["model"], aux=int(a["aux"])).eval()
    build_ms = (time.perf_counter() - t0) * 1000
    x = torch.randn(batch, 3, h, w)
    model = model.to(memory_format=fmt)
    x = x.contiguous(memory_format=fmt)
    amp = (lambda: torch.cpu.amp.autocast(dtype=torch.bfloat16)) if a["precision"] == "bf16" else contextlib.nullcontext
    grad_off = torch.inference_mode if a["mode"] == "inference" else torch.no_grad

    def run():
        with grad_off(), amp():
            return model(x)

    counter = FlopCounter(model)
    times, first_ms = [], None
    for i in range(max(warmup, 1) + iters):
        t0 = time.perf_counter()
        out = run()
        dt = time.perf_counter() - t0
        if i == 0:
            first_ms = dt * 1000
            counter.remove()
        if i >= max(warmup, 1):
            times.append(dt)
        y = out["out"]
        del out
    s = stats_ms(times)
    emit({"bench": "models", "model": a["model"], "size": [h, w], "batch": batch, "layout": a["layout"],
          "precision": a["precision"], "aux": int(a["aux"]), "mode": a["mode"], "warmup": max(warmup, 1),
          **s, "first_ms": first_ms, "build_ms": build_ms,
          "gflop": counter.total / 1e9, "gflops": counter.total / 1e6 / s["median_ms"],
          "out_shape": list(y.shape), "out_dtype": str(y.dtype).replace("torch.", ""),
          "peak_rss_mib": peak_rss_mib()})


main()
