#!/usr/bin/python3
"""The conv limit ("roofline") the model tables divide by: the best median GFLOP/s of a large dilated
3x3 conv (no bias, under no_grad, channels_last) in fp32 and in bf16 autocast, over two shapes
(4x256x64x64 -> 256 and 1x512x64x64 -> 512), as bench-ref/roofline.py measures it.
  limit.py [--threads 2 --warmup 3 --iters 10]
Prints one JSON line: {"fp32": GFLOP/s, "bf16": GFLOP/s, "cases": [...]}."""
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no bench/py/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

from common import emit, parse_args, setup_threads  # noqa: E402


def main():
    a = parse_args(sys.argv[1:], {"threads": "2", "warmup": "3", "iters": "10"})
    setup_threads(int(a["threads"]))
    torch.manual_seed(0)
    best = {"fp32": 0.0, "bf16": 0.0}
    cases = []
    for n, c in ((4, 256), (1, 512)):
        conv = torch.nn.Conv2d(c, c, 3, padding=2, dilation=2, bias=False).to(memory_format=torch.channels_last)
        x = torch.randn(n, c, 64, 64).contiguous(memory_format=torch.channels_last)
        flops = 2 * n * c * c * 9 * 64 * 64
        for prec in ("fp32", "bf16"):
            def fn():
                with torch.no_grad(), torch.cpu.amp.autocast(enabled=prec == "bf16", dtype=torch.bfloat16):
                    conv(x)
            for _ in range(int(a["warmup"])):
                fn()
            ms = []
            for _ in range(int(a["iters"])):
                t0 = time.perf_counter()
                fn()
                ms.append((time.perf_counter() - t0) * 1000)
            g = flops / 1e6 / statistics.median(ms)
            cases.append({"shape": [n, c, 64, 64], "precision": prec, "median_ms": statistics.median(ms), "gflops": g})
            best[prec] = max(best[prec], g)
    emit({"bench": "limit", **best, "cases": cases})


main()
