#!/usr/bin/python3
"""The PyTorch side of bench/train-step.ts: one training iteration, one JSON line last.

  train_step.py --model deeplabv3_resnet50 --batch 2 --size 512 --warmup 1 --iters 2 \
                --threads 2 --layout nchw|cl --precision fp32|bf16

One step: zero_grad(set_to_none=True) -> forward (under bf16 autocast with --precision bf16) ->
loss = CE(out, ignore_index=255) + 0.4 x CE(aux, ignore_index=255) -> backward -> SGD step (lr 0.01,
momentum 0.9, weight decay 1e-4). model.train() (BN in training mode), aux head built. The input is
randn(batch, 3, H, W), the labels randint(0, 21) (19 for mmseg models) with ~5% set to 255, fixed
across steps (seed 0). Prints median/min/max ms per step over --iters timed steps after --warmup,
the forward / backward / optimizer-step split (medians), the losses, and peak RSS (MiB).
"""
import contextlib
import os
import statistics
import sys
import time

sys.dont_write_bytecode = True  # no bench/py/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import TORCHVISION_MODELS, build_model, emit, parse_args, parse_size, peak_rss_mib, setup_threads  # noqa: E402


def main():
    a = parse_args(sys.argv[1:], {"model": "deeplabv3_resnet50", "size": "512", "batch": "2", "warmup": "1",
                                  "iters": "2", "threads": "2", "layout": "nchw", "precision": "fp32", "seed": "0"})
    setup_threads(int(a["threads"]))
    torch.manual_seed(int(a["seed"]))
    h, w = parse_size(a["size"])
    batch, warmup, iters = int(a["batch"]), int(a["warmup"]), int(a["iters"])
    fmt = torch.channels_last if a["layout"] == "cl" else torch.contiguous_format

    model = build_model(a["model"], aux=True).to(memory_format=fmt).train()
    classes = 21 if a["model"] in TORCHVISION_MODELS else 19
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(batch, 3, h, w).contiguous(memory_format=fmt)
    target = torch.randint(0, classes, (batch, h, w))
    target[torch.rand(batch, h, w) < 0.05] = 255
    amp = (lambda: torch.cpu.amp.autocast(dtype=torch.bfloat16)) if a["precision"] == "bf16" else contextlib.nullcontext

    steps, fwd, bwd, upd, losses = [], [], [], [], []
    for i in range(warmup + iters):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with amp():
            out = model(x)
            loss = F.cross_entropy(out["out"], target, ignore_index=255) \
                + 0.4 * F.cross_entropy(out["aux"], target, ignore_index=255)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        losses.append(loss.item())
        del out, loss
        if i >= warmup:
            steps.append((t3 - t0) * 1000)
            fwd.append((t1 - t0) * 1000)
            bwd.append((t2 - t1) * 1000)
            upd.append((t3 - t2) * 1000)
    med = statistics.median
    emit({"bench": "train", "model": a["model"], "size": [h, w], "batch": batch, "layout": a["layout"],
          "precision": a["precision"], "warmup": warmup, "runs": len(steps),
          "median_ms": med(steps), "min_ms": min(steps), "max_ms": max(steps),
          "fwd_ms": med(fwd), "bwd_ms": med(bwd), "step_ms": med(upd),
          "first_loss": losses[0], "last_loss": losses[-1], "peak_rss_mib": peak_rss_mib()})


main()
