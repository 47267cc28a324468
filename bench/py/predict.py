#!/usr/bin/python3
"""The PyTorch side of bench/predict.ts: what `deeplab predict` does, as a PyTorch user would write
it, over a folder of images; one JSON line last.

  predict.py --images DIR --out DIR [--model deeplabv3_resnet50 --weights FILE --threads 2 --bare 0
             --layout nchw|cl --precision fp32|bf16]
  predict.py --save-weights FILE [--model deeplabv3_resnet50]     # seeded random weights, for both sides

Phase 1 (untimed warm-up, and --bare N timed bare forwards): build the model, load the weights, one
forward of randn(1, 3, H, W) (H x W of the first image), then N more, timed and summed.
Phase 2 (timed as a whole, "predict"): build the model (torchvision, aux_loss=False), load the
weights, eval; for every *.jpg in DIR, sorted: PIL decode to RGB; to_tensor + normalize; forward under
inference_mode; argmax; write NAME_labels.png (class indices, mode L), NAME_color.png (VOC colours)
and NAME_overlay.jpg (Image.blend 0.5, quality 90). Reports the total, the sums of decode / segment
(preprocess + forward + argmax) / write, the build+load time and peak RSS (MiB) of this process.
The default is plain eager fp32 NCHW; --layout cl converts model and input to channels_last,
--precision bf16 runs the forward under torch.cpu.amp.autocast(dtype=torch.bfloat16).
"""
import glob
import os
import sys
import time

sys.dont_write_bytecode = True  # no bench/py/__pycache__ in the working tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402
import torchvision.transforms.functional as TF  # noqa: E402

from common import TORCHVISION_MODELS, build_model, emit, parse_args, peak_rss_mib, setup_threads  # noqa: E402


def voc_colormap(n=256):
    """The PASCAL VOC palette (bit-interleaved), as src/data/palettes.ts vocColormap."""
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def normalization(model):
    if model in TORCHVISION_MODELS:
        return 1 / 255, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    return 1.0, [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def load_model(name, weights, fmt):
    net = build_model(name, aux=0).net  # torchvision model (dict out) or mmseg EncoderDecoder (tuple out)
    if weights:
        net.load_state_dict(torch.load(weights, map_location="cpu"))
    return net.eval().to(memory_format=fmt)


def logits_of(net, x, fmt, bf16):
    with torch.inference_mode(), torch.cpu.amp.autocast(enabled=bf16, dtype=torch.bfloat16):
        y = net(x.contiguous(memory_format=fmt))
        return y["out"] if isinstance(y, dict) else y[0]


def main():
    a = parse_args(sys.argv[1:], {"images": "", "out": "", "model": "deeplabv3_resnet50", "weights": "",
                                  "threads": "2", "bare": "0", "save_weights": "", "seed": "0",
                                  "layout": "nchw", "precision": "fp32"})
    fmt = torch.channels_last if a["layout"] == "cl" else torch.contiguous_format
    bf16 = a["precision"] == "bf16"
    setup_threads(int(a["threads"]))
    torch.manual_seed(int(a["seed"]))
    if a["save_weights"]:
        net = build_model(a["model"], aux=0).net
        torch.save(net.state_dict(), a["save_weights"])
        emit({"bench": "predict", "saved": a["save_weights"], "model": a["model"]})
        return
    files = sorted(glob.glob(os.path.join(a["images"], "*.jpg")))
    if not files:
        sys.exit(f"no *.jpg in {a['images']!r}: run `node dist/bench/predict.js --prepare 1 --images DIR` first")
    os.makedirs(a["out"], exist_ok=True)
    with Image.open(files[0]) as im:
        w, h = im.size

    # Phase 1: warm-up (and optional bare forwards)
    t0 = time.perf_counter()
    net = load_model(a["model"], a["weights"], fmt)
    load_ms = (time.perf_counter() - t0) * 1000
    x = torch.randn(1, 3, h, w)
    logits_of(net, x, fmt, bf16)
    bare = []
    for _ in range(int(a["bare"])):
        t0 = time.perf_counter()
        logits_of(net, x, fmt, bf16)
        bare.append((time.perf_counter() - t0) * 1000)
    del net

    # Phase 2: predict
    scale, mean, std = normalization(a["model"])
    palette = voc_colormap()
    decode = segment = write = 0.0
    t_start = time.perf_counter()
    net = load_model(a["model"], a["weights"], fmt)
    for f in files:
        t0 = time.perf_counter()
        img = Image.open(f).convert("RGB")
        t1 = time.perf_counter()
        x = TF.to_tensor(img) if scale != 1.0 else torch.from_numpy(np.asarray(img)).permute(2, 0, 1).float()
        x = TF.normalize(x, mean, std).unsqueeze(0)
        labels = logits_of(net, x, fmt, bf16).argmax(1)[0].to(torch.uint8).numpy()
        t2 = time.perf_counter()
        stem = os.path.join(a["out"], os.path.splitext(os.path.basename(f))[0])
        Image.fromarray(labels, "L").save(stem + "_labels.png")
        color = Image.fromarray(palette[labels])
        color.save(stem + "_color.png")
        Image.blend(img, color, 0.5).save(stem + "_overlay.jpg", quality=90)
        t3 = time.perf_counter()
        decode += t1 - t0
        segment += t2 - t1
        write += t3 - t2
    total_ms = (time.perf_counter() - t_start) * 1000
    emit({"bench": "predict", "model": a["model"], "images": len(files), "size": [h, w],
          "layout": a["layout"], "precision": a["precision"],
          "total_ms": total_ms, "decode_ms": decode * 1000, "segment_ms": segment * 1000, "write_ms": write * 1000,
          "load_ms": load_ms, "bare_sum_ms": sum(bare) if bare else None, "bare_runs": len(bare),
          "weights": a["weights"] or None, "peak_rss_mib": peak_rss_mib()})


main()
