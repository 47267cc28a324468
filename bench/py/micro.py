#!/usr/bin/python3
"""The PyTorch side of bench/micro.ts: the same workloads, the same timing, one JSON line.
  micro.py conv | convbwd | add   [--threads 2 --warmup 5 --iters 30]
conv: 1x256x64x64 -> 256, 3x3, dilation 2, padding 2, no bias, fp32 NCHW, under no_grad.
convbwd: the same conv forward + backward (input and weight gradients), 3x the forward FLOPs.
add: torch.add on two 1-element tensors, microseconds per call (median of runs of 10,000)."""
import json
import statistics
import sys
import time

import torch


def main():
    args = sys.argv[1:]
    case = args[0]
    opt = dict(zip(args[1::2], args[2::2]))
    threads = int(opt.get("--threads", 2))
    warmup, iters = int(opt.get("--warmup", 5)), int(opt.get("--iters", 30))
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(0)
    inner = 1
    if case in ("conv", "convbwd"):
        conv = torch.nn.Conv2d(256, 256, 3, padding=2, dilation=2, bias=False)
        x = torch.randn(1, 256, 64, 64)
        flops = 2 * 256 * 256 * 9 * 64 * 64
        if case == "conv":
            def fn():
                with torch.no_grad():
                    conv(x)
        else:
            x.requires_grad_(True)
            g = torch.randn(1, 256, 64, 64)
            flops *= 3

            def fn():
                x.grad = None
                conv.weight.grad = None
                conv(x).backward(g)
    elif case == "add":
        a, b = torch.ones(1), torch.ones(1)
        inner, flops = 10000, 0

        def fn():
            for _ in range(inner):
                torch.add(a, b)
    else:
        raise SystemExit(f"unknown case {case}")
    for _ in range(warmup):
        fn()
    ms = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t0) * 1000 / inner)
    med = statistics.median(ms)
    print(json.dumps({"side": "pytorch", "case": case, "median_ms": med, "min_ms": min(ms), "max_ms": max(ms),
                      "gflops": flops / 1e6 / med if flops else None, "threads": threads,
                      "version": torch.__version__}))


main()
