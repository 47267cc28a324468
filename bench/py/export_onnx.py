#!/usr/bin/python3
"""Exports a bench preset to ONNX with Debian's torch.onnx, for bench/ort.ts (onnxruntime-node).

  export_onnx.py --model deeplabv3_resnet50 --size 512x1024 --out FILE.onnx [--seed 0] [--opset 13]

The model is the one bench/py/models.py times (common.build_model, random weights from --seed,
eval, no auxiliary head), traced at the given size with a batch of 1; the graph has one input
"input" (1x3xHxW float32) and one output "out" (the main logits). One JSON line last.
"""
import os
import sys
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402

from common import build_model, emit, parse_args, parse_size  # noqa: E402


class MainLogits(torch.nn.Module):
    """The model's 'out' alone: ONNX graphs return tensors, not dicts."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)["out"]


def main():
    a = parse_args(sys.argv[1:], {"model": "deeplabv3_resnet50", "size": "512", "out": "", "seed": "0",
                                  "opset": "13"})
    if not a["out"]:
        sys.exit("--out FILE.onnx is required")
    torch.manual_seed(int(a["seed"]))
    h, w = parse_size(a["size"])
    model = MainLogits(build_model(a["model"], aux=0)).eval()
    t0 = time.perf_counter()
    os.makedirs(os.path.dirname(os.path.abspath(a["out"])), exist_ok=True)
    tmp = a["out"] + ".tmp"
    with torch.no_grad():
        torch.onnx.export(model, torch.randn(1, 3, h, w), tmp, opset_version=int(a["opset"]),
                          input_names=["input"], output_names=["out"], do_constant_folding=True)
    os.replace(tmp, a["out"])  # a half-written file never looks finished
    emit({"bench": "export_onnx", "model": a["model"], "size": [h, w], "opset": int(a["opset"]),
          "out": a["out"], "export_ms": (time.perf_counter() - t0) * 1000,
          "bytes": os.path.getsize(a["out"])})


main()
