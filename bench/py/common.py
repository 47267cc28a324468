"""Shared helpers of the PyTorch-side benchmarks in bench/py/ (models.py, train_step.py, predict.py).

They stand alone (no ../shared needed): the torchvision models come from torchvision, the mmseg
ones from test/fixtures/mmseg_ref.py (a torch-only transcription of mmseg's modules), imported by
path. Every script sets torch.set_num_threads(N) and one inter-op thread, warms up, times, and
prints one JSON line last on stdout for bench/table.ts to read.
"""
import importlib.util
import json
import os
import resource
import statistics
import sys

import torch

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
TORCHVISION_MODELS = ("deeplabv3_resnet50", "deeplabv3_resnet101", "deeplabv3_mobilenet_v3_large")


def setup_threads(n):
    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)  # nothing here runs ops concurrently
    except RuntimeError:
        pass


def parse_size(s):
    """'512' -> (512, 512); '512x1024' -> (512, 1024), as H x W."""
    if "x" in s.lower():
        h, w = s.lower().split("x")
        return int(h), int(w)
    return int(s), int(s)


def parse_args(argv, defaults):
    """--key value pairs (the same flags bench/*.ts read), over defaults; unknown keys are errors."""
    if len(argv) % 2:
        sys.exit(f"expected --key value pairs, got {' '.join(argv)}")
    opt = dict(defaults)
    for k, v in zip(argv[0::2], argv[1::2]):
        key = k.lstrip("-").replace("-", "_")
        if not k.startswith("--") or key not in defaults:
            sys.exit(f"unknown option {k} (known: {', '.join('--' + d.replace('_', '-') for d in defaults)})")
        opt[key] = v
    return opt


def stats_ms(times_s):
    ms = [t * 1000.0 for t in times_s]
    return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms), "runs": len(ms)}


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # ru_maxrss is KiB on Linux


_mmseg_ref = None


def mmseg_ref():
    global _mmseg_ref
    if _mmseg_ref is None:
        path = os.path.join(ROOT, "test", "fixtures", "mmseg_ref.py")
        spec = importlib.util.spec_from_file_location("mmseg_ref", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        _mmseg_ref = mod
    return _mmseg_ref


class Wrapped(torch.nn.Module):
    """Gives every model the same output: a dict with 'out' and, when built, 'aux'."""

    def __init__(self, net, kind):
        super().__init__()
        self.net = net
        self.kind = kind

    def forward(self, x):
        y = self.net(x)
        if self.kind == "mmseg":
            out, aux = y
            return {"out": out, "aux": aux} if aux is not None else {"out": out}
        return y


def build_model(name, aux):
    """A preset by our name: torchvision's builders (21 classes) or an mmseg config (19 classes)."""
    if name in TORCHVISION_MODELS:
        import torchvision.models.segmentation as seg
        net = getattr(seg, name)(weights=None, weights_backbone=None, num_classes=21, aux_loss=bool(aux))
        return Wrapped(net, "torchvision")
    ref = mmseg_ref()
    if name not in ref.PRESETS:
        sys.exit(f"unknown model {name!r}; one of {', '.join(TORCHVISION_MODELS + tuple(ref.PRESETS))}")
    cfg = dict(ref.PRESETS[name])
    if not aux:
        cfg["auxiliary_head"] = None
    return Wrapped(ref.build(cfg), "mmseg")


class FlopCounter:
    """Forward FLOPs = 2 x multiply-adds of every Conv2d and Linear (as src/models/flops.ts counts),
    from output shapes, by forward hooks; bias, BN, activations, pooling and resizes not counted."""

    def __init__(self, model):
        self.total = 0
        self.handles = [m.register_forward_hook(self._hook) for m in model.modules()
                        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]

    def _hook(self, m, inp, out):
        if isinstance(m, torch.nn.Conv2d):
            kh, kw = m.kernel_size
            self.total += 2 * out.numel() * (m.in_channels // m.groups) * kh * kw
        else:
            self.total += 2 * out.numel() * m.in_features

    def remove(self):
        for h in self.handles:
            h.remove()


def emit(result):
    result.setdefault("side", "pytorch")
    result.setdefault("version", torch.__version__)
    result.setdefault("threads", torch.get_num_threads())
    print(json.dumps(result, sort_keys=True), flush=True)
