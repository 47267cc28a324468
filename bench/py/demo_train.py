"""The `deeplab demo` recipe in PyTorch: the comparison for the README's demo figure.

Trains the demo config's model (mmseg's DeepLabV3+ R-18-D8 from test/fixtures/mmseg_ref.py, a
torch-only transcription of mmseg's modules, imported by path) from scratch on the generated
Fashion-MNIST scenes (the PNGs, split files and meta.json that `deeplab demo` writes under
.cache/fashion-scenes) with the recipe of the demo config
(configs/demo/fashion-scenes_deeplabv3plus_r18-d8.json, read from the file, so the two cannot
drift): the item pre-training of the backbone first (the settings read from our
src/training/item-pretrain.ts through node), then optimizer, poly schedule with linear warm-up,
batch, crop, iterations, aux weight, class weights, bf16 autocast and channels_last, seed;
evaluates mmseg-style on the val split and prints one JSON line last on stdout:
{"mIoU", "aAcc", "mAcc", "seconds", "trainSeconds", "evalSeconds", "iters", ...}.

    apt-get install python3-opencv   # once, beside scripts/setup.sh --python
    /usr/bin/python3 bench/py/demo_train.py [--config FILE] [--iters N] [--threads N]
                                            [--workers N] [--aug-test] [--log N] [--seed N]
                                            [--pretrain-steps N]

What matches ours (src/training/trainer.ts, src/data/transforms.ts, src/evaluation/evaluate.ts):
  * model: mmseg's configs/_base_/models/deeplabv3_r50-d8.py with the r18 overrides, at the output
    strides the config says for training and evaluation: mmseg's D8 model is strides (1,2,1,1),
    dilations (1,1,2,4), ASPP rates (1,12,24,36); the OS16 one is strides (1,2,2,1), dilations
    (1,1,1,2), ASPP rates (1,6,12,18) (as mmseg's D16 configs), both with contract_dilation; OS32
    (the demo's) is strides (1,2,2,2), no dilation, ASPP rates (1,3,6,9). All have the same
    state_dict; the trained weights are loaded into the eval stride's model to evaluate.
  * initialisation as mmseg/mmcv: Kaiming-normal (fan_out, relu) convs, BN weight 1 bias 0,
    conv_seg normal(0, 0.01) bias 0. Dropout2d 0.1 before each conv_seg.
  * item pre-training (src/training/item-pretrain.ts): the backbone at output stride 32, global
    average pool of its last stage, a linear layer to the 10 item classes; AdamW, warm-up from
    lr / 10, poly 0.9 to 0; new item images every step (one item, 55-100% of the side, whole,
    on a scene background, as makeItemImage); under bf16 autocast when the config trains in bf16.
  * loss: cross-entropy with the config's class weights, ignore 255, averaged over ALL pixels
    (mmseg's avg_non_ignore=False), decode + aux_weight x aux, both on logits resized bilinear
    to the crop; in float32 on bf16 logits under autocast, as ours.
  * optimizer over all parameters (no paramwise options), weight decay included; lr set before
    every step to poly(iter) = (base - min) (1 - iter/T)^power + min, times the warm-up factor
    ratio + (1 - ratio) iter / warmup in the first `warmupIters` steps.
  * data order: mmseg's InfiniteSampler (a new permutation each epoch, batches may span two);
    BN in training mode; inputs normalised with ImageNet mean/std on 0..255 RGB.
  * train pipeline with OpenCV as mmcv: RandomResize(scale, ratio_range, keep_ratio) with
    cv2 INTER_LINEAR for the image and INTER_NEAREST for the label; RandomCrop with
    cat_max_ratio (10 re-draws); RandomFlip; PhotoMetricDistortion exactly as mmseg's (uint8
    convert(), OpenCV 8-bit HSV); pad bottom/right to the crop, image 0 (before normalisation,
    as ours) and label 255.
  * evaluation: each val image whole, resized to the config's test scale (keep ratio, cv2
    INTER_LINEAR; none: at its size), batch 1, logits resized bilinear to the label and argmaxed;
    one dataset confusion matrix; mIoU = nanmean of per-class IoU (mmseg), aAcc; --aug-test adds
    the config's tta (scales with cv2 resize, flips, softmax averaged at the original size).
Differences: the random streams are numpy's/torch's, not ours (same distributions, different
draws: the item images and their backgrounds too); the data loader is torch's DataLoader with
`workers` processes (ours: threads).
"""
import argparse
import gzip
import importlib.util
import subprocess
import json
import math
import os
import sys
import time

try:
    import cv2  # OpenCV, as mmcv resizes and converts colours with it
except ImportError:
    raise SystemExit("demo_train.py needs OpenCV's Python bindings: apt-get install python3-opencv")
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEFAULT_CONFIG = os.path.join(ROOT, "configs", "demo", "fashion-scenes_deeplabv3plus_r18-d8.json")
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
cv2.setNumThreads(0)


def load_mmseg_ref():
    path = os.path.join(ROOT, "test", "fixtures", "mmseg_ref.py")
    spec = importlib.util.spec_from_file_location("mmseg_ref", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ---- model ------------------------------------------------------------------------------------

def model_cfg(ref, preset, num_classes, output_stride, aux):
    cfg = ref.merge(ref.PRESETS[preset], dict(
        decode_head=dict(num_classes=num_classes), auxiliary_head=dict(num_classes=num_classes)))
    if output_stride == 16:
        # mmseg's D16 layout (configs/deeplabv3/*-d16-mg124*, without the multi-grid)
        cfg = ref.merge(cfg, dict(backbone=dict(strides=(1, 2, 2, 1), dilations=(1, 1, 1, 2)),
                                  decode_head=dict(dilations=(1, 6, 12, 18))))
    elif output_stride == 32:
        # no atrous convolution; the ASPP rates scaled as ours (src/models/heads/mmseg.ts): 12/24/36
        # at stride 8 are 3/6/9 at stride 32
        cfg = ref.merge(cfg, dict(backbone=dict(strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)),
                                  decode_head=dict(dilations=(1, 3, 6, 9))))
    elif output_stride != 8:
        raise SystemExit(f"output stride {output_stride}: only 8, 16 and 32")
    if not aux:
        cfg = dict(cfg, auxiliary_head=None)
    return cfg


def init_weights(model):
    """mmseg/mmcv init: Kaiming-normal fan_out convs (bias 0), BN 1/0, conv_seg N(0, 0.01)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for head in (model.decode_head, model.auxiliary_head):
        if head is not None:
            nn.init.normal_(head.conv_seg.weight, 0, 0.01)
            nn.init.zeros_(head.conv_seg.bias)


# ---- data -------------------------------------------------------------------------------------

def read_split(root, meta, split):
    with open(os.path.join(root, meta["splits"][split])) as f:
        stems = [s.strip() for s in f if s.strip()]
    images, labels = [], []
    for s in stems:
        img = cv2.imread(os.path.join(root, meta["images"], s + meta["imageSuffix"]), cv2.IMREAD_COLOR)
        lab = cv2.imread(os.path.join(root, meta["masks"], s + meta["maskSuffix"]), cv2.IMREAD_UNCHANGED)
        if img is None or lab is None:
            raise SystemExit(f"{root}: cannot read {s}")
        images.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
        labels.append(lab)
    return stems, images, labels


def rescale_size(w, h, scale):
    """mmcv rescale_size with a (W, H) scale and keep_ratio."""
    f = min(max(scale) / max(h, w), min(scale) / min(h, w))
    return max(1, int(w * f + 0.5)), max(1, int(h * f + 0.5))


def convert(img, alpha=1.0, beta=0.0):
    img = img.astype(np.float32) * alpha + beta
    return np.clip(img, 0, 255).astype(np.uint8)


def photometric(img, rng):
    """mmseg PhotoMetricDistortion on an RGB uint8 image (RGB2HSV here = BGR2HSV on BGR there)."""
    if rng.integers(2):
        img = convert(img, beta=rng.uniform(-32, 32))
    mode = rng.integers(2)
    if mode == 1 and rng.integers(2):
        img = convert(img, alpha=rng.uniform(0.5, 1.5))
    if rng.integers(2):
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[:, :, 1] = convert(hsv[:, :, 1], alpha=rng.uniform(0.5, 1.5))
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if rng.integers(2):
        hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
        hsv[:, :, 0] = (hsv[:, :, 0].astype(int) + rng.integers(-18, 18)) % 180
        img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if mode == 0 and rng.integers(2):
        img = convert(img, alpha=rng.uniform(0.5, 1.5))
    return img


def train_transform(img, lab, p, rng, ignore=255):
    h, w = lab.shape
    lo, hi = p["ratioRange"]
    r = rng.uniform() * (hi - lo) + lo
    target = (int(p["scale"][0] * r), int(p["scale"][1] * r))
    nw, nh = rescale_size(w, h, target)
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    lab = cv2.resize(lab, (nw, nh), interpolation=cv2.INTER_NEAREST)
    ch, cw = p["crop"]

    def draw():
        y1 = rng.integers(0, max(nh - ch, 0) + 1)
        x1 = rng.integers(0, max(nw - cw, 0) + 1)
        return y1, min(y1 + ch, nh), x1, min(x1 + cw, nw)

    box = draw()
    if p["catMaxRatio"] < 1:
        for _ in range(10):
            values, counts = np.unique(lab[box[0]:box[1], box[2]:box[3]], return_counts=True)
            counts = counts[values != ignore]
            if len(counts) > 1 and counts.max() / counts.sum() < p["catMaxRatio"]:
                break
            box = draw()
    img = img[box[0]:box[1], box[2]:box[3]]
    lab = lab[box[0]:box[1], box[2]:box[3]]
    if rng.uniform() < p["flipProb"]:
        img, lab = img[:, ::-1], lab[:, ::-1]
    img = np.ascontiguousarray(img)
    if p["photometric"]:
        img = photometric(img, rng)
    out_img = np.zeros((ch, cw, 3), np.uint8)
    out_lab = np.full((ch, cw), ignore, np.uint8)
    out_img[: img.shape[0], : img.shape[1]] = img
    out_lab[: lab.shape[0], : lab.shape[1]] = lab
    return out_img, out_lab


def to_input(imgs):
    """N x H x W x 3 uint8 RGB -> normalised N x 3 x H x W float32."""
    x = (np.asarray(imgs, np.float32) - MEAN) / STD
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


class TrainBatches(torch.utils.data.Dataset):
    """Item k = batch k of mmseg's InfiniteSampler stream; augmentation seeded by (seed, stream index)."""

    def __init__(self, images, labels, pipeline, batch, seed):
        self.images, self.labels, self.p, self.batch, self.seed = images, labels, pipeline, batch, seed
        self.n = len(images)
        self._perms = {}

    def perm(self, epoch):
        if epoch not in self._perms:
            self._perms[epoch] = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        return self._perms[epoch]

    def __len__(self):
        return 1 << 30

    def __getitem__(self, k):
        imgs, labs = [], []
        for s in range(k * self.batch, (k + 1) * self.batch):
            i = int(self.perm(s // self.n)[s % self.n])
            rng = np.random.default_rng([self.seed, s])
            img, lab = train_transform(self.images[i], self.labels[i], self.p, rng)
            imgs.append(img)
            labs.append(lab)
        return to_input(imgs), torch.from_numpy(np.stack(labs).astype(np.int64))


def poly_lr(it, total, base, s):
    lr = (base - s["minLr"]) * (1 - min(it, total) / total) ** s["power"] + s["minLr"]
    if s["warmupIters"] > 0 and it < s["warmupIters"]:
        lr *= s["warmupRatio"] + (1 - s["warmupRatio"]) * it / s["warmupIters"]
    return lr


def seg_loss(logits, y, ignore, avg_non_ignore, weight=None):
    per_pixel = F.cross_entropy(logits.float(), y, weight=weight, ignore_index=ignore, reduction="none")
    if avg_non_ignore:
        return per_pixel.sum() / (y != ignore).sum().clamp(min=1)
    return per_pixel.mean()


# ---- item pre-training ------------------------------------------------------------------------

FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def read_fashion_train():
    with gzip.open(os.path.join(FASHION_DIR, "train-images-idx3-ubyte.gz")) as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(os.path.join(FASHION_DIR, "train-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return pixels, labels


def item_image(pixels, labels, size, rng):
    """src/data/fashion-scenes.ts makeItemImage with numpy draws: background, one whole item."""
    c1, c2 = rng.random(3) * 255, rng.random(3) * 255
    fx, fy, gx, gy = rng.random(4) * np.array([0.4, 0.4, 0.3, 0.3])
    p1, p2 = rng.random(2) * 6.3
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    m = (0.5 + 0.25 * np.sin(fx * x + fy * y + p1) + 0.25 * np.sin(gx * x - gy * y + p2))[..., None]
    rgb = c1 * m + c2 * (1 - m) + ((rng.random((size, size)) - 0.5) * 30)[..., None]
    idx = rng.integers(len(labels))
    side = int(round(size * (0.55 + rng.random() * 0.45)))
    ox, oy = rng.integers(0, size - side + 1), rng.integers(0, size - side + 1)
    tint = 0.4 + rng.random(3) * 0.6
    src = np.minimum(27, (np.arange(side) * 28) // side)
    v = pixels[idx][src][:, src].astype(np.float64)
    sil = v >= 40
    patch = rgb[oy:oy + side, ox:ox + side]
    patch[sil] = 40 + v[sil][:, None] * tint * 0.85
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8), int(labels[idx])


def demo_item_pretrain():
    """DEMO_ITEM_PRETRAIN from our built src/training/item-pretrain.ts (dist/), through node."""
    module = os.path.join(ROOT, "dist", "src", "training", "item-pretrain.js")
    js = f"import({json.dumps(module)}).then((m) => console.log(JSON.stringify(m.DEMO_ITEM_PRETRAIN)))"
    try:
        return json.loads(subprocess.run(["node", "-e", js], check=True, capture_output=True, text=True).stdout)
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit(f"cannot read DEMO_ITEM_PRETRAIN from {module} (run bash scripts/setup.sh first): {e}")


def pretrain_backbone(ref, model, cfg_os32, s, seed, autocast, channels_last):
    """The backbone as a 10-way item classifier at OS32; its weights go back into `model`."""
    bb = ref.build(cfg_os32)
    bb.load_state_dict(model.backbone.state_dict())
    last_conv = [v for k, v in bb.state_dict().items() if k.startswith("layer4.") and v.dim() == 4][-1]
    fc = nn.Linear(last_conv.shape[0], 10)
    if channels_last:
        bb = bb.to(memory_format=torch.channels_last)
    bb.train()
    opt = torch.optim.AdamW(list(bb.parameters()) + list(fc.parameters()), lr=s["lr"], weight_decay=s["weightDecay"])
    pixels, labels = read_fashion_train()
    rng = np.random.default_rng([seed, 2_000_000_000])
    t0 = time.perf_counter()
    correct = counted = 0
    steps = s["steps"]
    for step in range(steps):
        warm = 0.1 + 0.9 * step / s["warmup"] if step < s["warmup"] else 1.0
        for g in opt.param_groups:
            g["lr"] = s["lr"] * warm * (1 - step / steps) ** 0.9
        imgs, ys = zip(*(item_image(pixels, labels, s["size"], rng) for _ in range(s["batch"])))
        x = to_input(np.stack(imgs))
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        y = torch.tensor(ys, dtype=torch.int64)
        with autocast():
            logits = fc(bb(x)[-1].float().mean((2, 3)))
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step >= steps - max(1, steps // 4):
            correct += int((logits.argmax(1) == y).sum())
            counted += len(ys)
    model.backbone.load_state_dict(bb.state_dict())
    return correct / max(counted, 1), time.perf_counter() - t0


# ---- evaluation -------------------------------------------------------------------------------

def cv2_scaled_size(w, h, r):
    """mmcv Resize(scale_factor=r, keep_ratio=True): the size as ours (inference.ts rescaleSize)."""
    sw, sh = int(w * r + 0.5), int(h * r + 0.5)
    f = min(max(sw, sh) / max(w, h), min(sw, sh) / min(w, h))
    return int(w * f + 0.5), int(h * f + 0.5)


@torch.inference_mode()
def evaluate(model, images, labels, num_classes, ignore, tta=None, test_scale=None):
    conf = np.zeros((num_classes, num_classes), np.int64)
    for img, lab in zip(images, labels):
        h, w = lab.shape
        if tta is None:
            x = img
            if test_scale:
                x = cv2.resize(img, rescale_size(w, h, test_scale), interpolation=cv2.INTER_LINEAR)
            out, _ = model(to_input(x[None]))
            if out.shape[2:] != (h, w):
                out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
            pred = out.argmax(1)[0]
        else:
            probs = 0
            views = 0
            for r in tta["scales"]:
                nw, nh = cv2_scaled_size(w, h, r)
                x = to_input(cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)[None])
                for flip in ([False, True] if tta["flip"] else [False]):
                    out, _ = model(x.flip(3) if flip else x)
                    if flip:
                        out = out.flip(3)
                    out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
                    probs = probs + F.softmax(out, 1)
                    views += 1
            pred = (probs / views).argmax(1)[0]
        pred = pred.numpy().reshape(-1)
        gt = lab.reshape(-1).astype(np.int64)
        keep = gt != ignore
        conf += np.bincount(gt[keep] * num_classes + pred[keep], minlength=num_classes ** 2).reshape(num_classes, num_classes)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - inter
    label_area = conf.sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
        acc = inter / label_area
    return {"mIoU": float(np.nanmean(iou) * 100), "aAcc": float(inter.sum() / conf.sum() * 100),
            "mAcc": float(np.nanmean(acc) * 100), "perClassIoU": [None if math.isnan(v) else round(v * 100, 2) for v in iou]}


# ---- main -------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=DEFAULT_CONFIG)
    ap.add_argument("--root", help="dataset root (default: the config's data.dataset.root, from the repository root)")
    ap.add_argument("--iters", type=int, help="override train.iters")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("DEEPLAB_THREADS") or os.cpu_count()))
    ap.add_argument("--workers", type=int, help="DataLoader processes (default: the config's train.workers)")
    ap.add_argument("--aug-test", action="store_true", help="also evaluate with the config's tta (multi-scale + flip)")
    ap.add_argument("--log", type=int, help="print the loss every N iterations (default: the config's logInterval)")
    ap.add_argument("--seed", type=int, help="override train.seed")
    ap.add_argument("--pretrain-steps", type=int, help="item pre-training steps (default: ours, DEMO_ITEM_PRETRAIN; 0: none)")
    a = ap.parse_args()

    with open(a.config) as f:
        cfg = json.load(f)
    m, d, t = cfg["model"], cfg["data"], cfg["train"]
    if t.get("accumulate", 1) != 1 or t.get("lrMult") or t["loss"].get("ohem"):
        raise SystemExit("this script covers accumulate 1, no lrMult, no OHEM")
    if m.get("batchNorm", "train") != "train" or m.get("pretrained"):
        raise SystemExit("this script covers trained BN, no pretrained weights (the item pre-training is its own)")
    iters = a.iters or t["iters"]
    root = a.root or os.path.join(ROOT, d["dataset"]["root"])
    meta_path = os.path.join(root, "meta.json") if a.root or not d["dataset"].get("meta") else os.path.join(ROOT, d["dataset"]["meta"])
    with open(meta_path) as f:
        meta = json.load(f)
    num_classes, ignore = m["numClasses"], t["loss"]["ignoreIndex"]
    seed = t["seed"] if a.seed is None else a.seed
    bf16 = t.get("precision", "fp32") == "bf16"
    channels_last = bool(t.get("channelsLast"))

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    weight = torch.tensor(t["loss"]["classWeights"], dtype=torch.float32) if t["loss"].get("classWeights") else None
    pre = demo_item_pretrain()
    if a.pretrain_steps is not None:
        pre["steps"] = a.pretrain_steps
    workers = t["workers"] if a.workers is None else a.workers

    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    torch.manual_seed(seed)
    np.random.seed(seed)

    t_load = time.perf_counter()
    _, train_images, train_labels = read_split(root, meta, d["dataset"]["trainSplit"])
    _, val_images, val_labels = read_split(root, meta, d["dataset"]["valSplit"])
    load_seconds = time.perf_counter() - t_load

    ref = load_mmseg_ref()
    model = ref.build(model_cfg(ref, m["preset"], num_classes, m["outputStride"]["train"], m["aux"]))
    init_weights(model)
    t_pre = time.perf_counter()
    pre_acc = None
    if pre["steps"] > 0:
        os32 = ref.merge(model_cfg(ref, m["preset"], num_classes, 16, False)["backbone"],
                         dict(strides=(1, 2, 2, 2), dilations=(1, 1, 1, 1)))
        pre_acc, _ = pretrain_backbone(ref, model, os32, pre, seed, autocast, channels_last)
        print(f"item pre-training: {pre['steps']} steps of {pre['batch']} at {pre['size']}px, "
              f"{pre_acc * 100:.1f}% right in the last quarter", file=sys.stderr)
    pretrain_seconds = time.perf_counter() - t_pre
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    o = t["optimizer"]
    if o["type"] == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=o["lr"], momentum=o["momentum"], weight_decay=o["weightDecay"], nesterov=o["nesterov"])
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=o["lr"], betas=tuple(o.get("betas", (0.9, 0.999))), weight_decay=o["weightDecay"])

    batches = TrainBatches(train_images, train_labels, d["train"], t["batchSize"], seed)
    loader = torch.utils.data.DataLoader(batches, batch_size=None, shuffle=False, num_workers=workers,
                                         prefetch_factor=2 if workers > 0 else None, persistent_workers=workers > 0)
    log_every = a.log or t.get("logInterval", 50)
    loss_cfg = t["loss"]
    print(f"demo_train: {m['preset']} OS{m['outputStride']['train']}/OS{m['outputStride']['eval']}, {len(train_images)} train / {len(val_images)} val, "
          f"{iters} iterations of batch {t['batchSize']}, {o['type']} lr {o['lr']}, {a.threads} threads, {workers} workers", file=sys.stderr)

    t0 = time.perf_counter()
    data_wait = 0.0
    model.train()
    it_loader = iter(loader)
    loss_v = float("nan")
    for it in range(iters):
        lr = poly_lr(it, iters, o["lr"], t["schedule"])
        for g in opt.param_groups:
            g["lr"] = lr
        d0 = time.perf_counter()
        x, y = next(it_loader)
        data_wait += time.perf_counter() - d0
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast():
            out, aux = model(x)
        loss = seg_loss(out, y, ignore, loss_cfg["avgNonIgnore"], weight)
        if aux is not None:
            loss = loss + loss_cfg["auxWeight"] * seg_loss(aux, y, ignore, loss_cfg["avgNonIgnore"], weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_v = loss.item()
        if not math.isfinite(loss_v):
            raise SystemExit(f"loss is {loss_v} at iteration {it + 1}")
        if (it + 1) % log_every == 0 or it + 1 == iters:
            print(f"iter {it + 1}/{iters} lr {lr:.3e} loss {loss_v:.4f} ({(time.perf_counter() - t0) / (it + 1):.3f} s/iter)", file=sys.stderr)
    train_seconds = time.perf_counter() - t0
    del it_loader, loader

    # Evaluation at the eval output stride: the same weights in that stride's layout.
    t1 = time.perf_counter()
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("auxiliary_head.")}
    ev = ref.build(model_cfg(ref, m["preset"], num_classes, m["outputStride"]["eval"], aux=False))
    ev.load_state_dict(state)
    ev.eval()
    single = evaluate(ev, val_images, val_labels, num_classes, ignore, test_scale=d["test"].get("scale"))
    eval_seconds = time.perf_counter() - t1
    result = {"mIoU": round(single["mIoU"], 2), "aAcc": round(single["aAcc"], 2), "mAcc": round(single["mAcc"], 2),
              "seconds": round(train_seconds + eval_seconds, 1), "trainSeconds": round(train_seconds, 1),
              "evalSeconds": round(eval_seconds, 1), "iters": iters, "secondsPerIter": round(train_seconds / iters, 4),
              "dataWaitShare": round(data_wait / train_seconds, 4), "finalLoss": round(loss_v, 4),
              "loadSeconds": round(load_seconds, 1), "threads": a.threads, "workers": workers,
              "pretrainSteps": pre["steps"], "pretrainSeconds": round(pretrain_seconds, 1),
              "pretrainAccuracy": None if pre_acc is None else round(pre_acc, 4), "seed": seed,
              "precision": "bf16" if bf16 else "fp32",
              "torch": torch.__version__, "perClassIoU": single["perClassIoU"]}
    if a.aug_test:
        t2 = time.perf_counter()
        multi = evaluate(ev, val_images, val_labels, num_classes, ignore, tta=cfg["evaluation"]["tta"])
        result["mIoUmsFlip"] = round(multi["mIoU"], 2)
        result["augTestSeconds"] = round(time.perf_counter() - t2, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
