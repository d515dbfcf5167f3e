#!/usr/bin/env python3
"""PyTorch side of `npm run bench:tutorial`: the five rows of the PyTorch knowledge-distillation
tutorial (pytorch.org/tutorials/beginner/knowledge_distillation_tutorial) on Fashion-MNIST, with
the recipe as the tutorial writes it — Adam lr 0.001 (no weight decay), constant rate, 10 epochs,
batch 128, shuffled, no augmentation, CE; KD at T 2 with weights 0.25 / 0.75; the cosine loss on
the flattened conv features (teacher avg-pooled to the student's width) and the 3x3 conv regressor
with MSE, each weight 0.25 with CE 0.75 — and the same data and normalisation as
configs/tutorial/fashion-mnist/ (mean 0.2860, std 0.3530). The models are the tutorial's with one
input channel (flatten widths 1568 and 784 for 28x28 inputs).

A dev-time baseline (Debian's python3-torch 1.13), never a dependency of the product. Prints one
JSON line per row and writes them to --out:
  {"row": ..., "test_top1": ..., "seconds": ..., "epochs": ..., "threads": ..., "torch": ...}

  OMP_NUM_THREADS=2 /usr/bin/python3 bench/tutorial_torch.py [--epochs 10] [--rows teacher,student,kd,cosine,regressor]
"""
import argparse
import gzip
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load_split(root, prefix):
    def find(name):
        for p in (os.path.join(root, name), os.path.join(root, name + ".gz")):
            if os.path.exists(p):
                return p
        raise FileNotFoundError(os.path.join(root, name))

    x = read_idx(find(f"{prefix}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(find(f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    x = (x - MEAN) / STD
    return torch.from_numpy(x).unsqueeze(1), torch.from_numpy(y)


class DeepNN(nn.Module):
    def __init__(self, num_classes=10, channels=1, flat=1568):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 128, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(128, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(64, 64, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(64, 32, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(nn.Linear(flat, 512), nn.ReLU(), nn.Dropout(0.1), nn.Linear(512, num_classes))

    def forward(self, x):
        f = self.features(x)
        return self.classifier(torch.flatten(f, 1)), f


class LightNN(nn.Module):
    def __init__(self, num_classes=10, channels=1, flat=784):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 16, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(nn.Linear(flat, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, num_classes))
        # The tutorial's regressor student: a 3x3 conv from its 16 channels to the teacher's 32.
        self.regressor = nn.Conv2d(16, 32, kernel_size=3, padding=1)

    def forward(self, x):
        f = self.features(x)
        return self.classifier(torch.flatten(f, 1)), f


DROP_LAST = False


def batches(x, y, size, shuffle, gen, with_index=False):
    order = torch.randperm(len(x), generator=gen) if shuffle else torch.arange(len(x))
    for i in range(0, len(x), size):
        idx = order[i:i + size]
        # --drop-last: training skips a last partial batch, as Retort's training loader does.
        if shuffle and DROP_LAST and len(idx) < size:
            return
        yield (x[idx], y[idx], idx) if with_index else (x[idx], y[idx])


class TeacherOutputs:
    """The frozen teacher's outputs (logits, conv features) for every training image, computed once.

    The recipe has no augmentation and the teacher runs in eval mode (no dropout), so its output for
    an image is the same every epoch: reading it back gives the tutorial's per-batch forward pass
    (equal up to float rounding, since the batches differ in size), about 10x faster on this CPU
    for the distillation rows."""

    def __init__(self, teacher, x):
        teacher.eval()
        logits, feats = [], []
        with torch.no_grad():
            for i in range(0, len(x), 512):
                out = teacher(x[i:i + 512])
                logits.append(out[0])
                feats.append(out[1])
        self.logits, self.feats = torch.cat(logits), torch.cat(feats)

    def __call__(self, idx):
        return self.logits[idx], self.feats[idx]


def evaluate(model, x, y):
    model.eval()
    hit = 0
    with torch.no_grad():
        for xb, yb in batches(x, y, 128, False, None):
            hit += (model(xb)[0].argmax(1) == yb).sum().item()
    return 100.0 * hit / len(x)


def train(model, data, epochs, extra=None, teacher=None, seed=42):
    """CE (weight 0.75 with a teacher term, else 1) plus `extra(student_out, teacher_out, yb)`."""
    x, y = data
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    ce = nn.CrossEntropyLoss()
    if isinstance(teacher, nn.Module):
        teacher.eval()
    for _ in range(epochs):
        model.train()
        for xb, yb, idx in batches(x, y, 128, True, gen, with_index=True):
            opt.zero_grad()
            out = model(xb)
            if extra is None:
                loss = ce(out[0], yb)
            elif isinstance(teacher, TeacherOutputs):
                t_out = teacher(idx)
                loss = 0.75 * ce(out[0], yb) + 0.25 * extra(model, out, t_out)
            else:
                with torch.no_grad():
                    t_out = teacher(xb)
                loss = 0.75 * ce(out[0], yb) + 0.25 * extra(model, out, t_out)
            loss.backward()
            opt.step()


def load_retort_weights(model, folder):
    """Copies a Retort model's weights (weights.json + weights.bin, tfjs layouts in the model's weight
    order) into the tutorial's `model` (DeepNN or LightNN): conv kernels HWIO -> OIHW, dense kernels
    [in, out] transposed, and the first linear layer's inputs reordered from Retort's (h, w, c)
    flatten to PyTorch's (c, h, w), so the model is the tutorial's own, features and all."""
    manifest = json.load(open(os.path.join(folder, "weights.json")))
    flat = np.fromfile(os.path.join(folder, "weights.bin"), dtype=np.float32)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    layers = convs + [m for m in model.classifier if isinstance(m, nn.Linear)]
    if len(manifest) != 2 * len(layers):
        raise SystemExit(f"{folder}: {len(manifest)} weight tensors for {type(model).__name__}'s {len(layers)} layers (kernel and bias each)")

    def tensor(i):
        e = manifest[i]
        return flat[e["offset"]:e["offset"] + int(np.prod(e["shape"]))].reshape(e["shape"])

    channels = convs[-1].out_channels
    with torch.no_grad():
        for i, layer in enumerate(layers):
            k = tensor(2 * i)
            if k.ndim == 4:
                w = k.transpose(3, 2, 0, 1)
            elif i == len(convs):  # the first linear layer, after the channels x 7 x 7 features
                w = k.reshape(7, 7, channels, -1).transpose(3, 2, 0, 1).reshape(k.shape[1], -1)
            else:
                w = k.T
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            layer.bias.copy_(torch.from_numpy(tensor(2 * i + 1)))
    return model


def kd_term(_model, out, t_out, T=2.0):
    soft_targets = F.softmax(t_out[0] / T, dim=-1)
    soft_prob = F.log_softmax(out[0] / T, dim=-1)
    return torch.sum(soft_targets * (soft_targets.log() - soft_prob)) / soft_prob.size()[0] * (T ** 2)


def cosine_term(_model, out, t_out):
    s = torch.flatten(out[1], 1)
    t = F.avg_pool1d(torch.flatten(t_out[1], 1), kernel_size=2)
    return nn.CosineEmbeddingLoss()(s, t, torch.ones(s.shape[0]))


def regressor_term(model, out, t_out):
    return nn.MSELoss()(model.regressor(out[1]), t_out[1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--rows", default="teacher,student,kd,cosine,regressor")
    ap.add_argument("--out", default="bench/results/tutorial-fashion-mnist-torch.jsonl")
    ap.add_argument("--train-limit", type=int, default=0)
    ap.add_argument("--seed", type=int, default=42, help="the tutorial's seed is 42; others measure the spread")
    ap.add_argument("--drop-last", action="store_true", help="skip each epoch's last partial training batch")
    ap.add_argument("--seeds", default="", help="comma-separated seeds for the student rows (default: --seed)")
    ap.add_argument("--teacher-weights", default="",
                    help="a folder with a trained Retort DeepNN (weights.json + weights.bin) used as the teacher instead of training one")
    ap.add_argument("--student-init", default="",
                    help="a folder with <row>-s<seed>/ weights of Retort's initial LightNN per row and seed: each student starts from Retort's draw")
    ap.add_argument("--cache-teacher", action="store_true",
                    help="compute the frozen teacher's outputs once per training image instead of on every batch (same arithmetic)")
    args = ap.parse_args()
    global DROP_LAST
    DROP_LAST = args.drop_last
    threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    torch.set_num_threads(threads)
    train_data = load_split(args.data, "train")
    if args.train_limit > 0:
        train_data = (train_data[0][:args.train_limit], train_data[1][:args.train_limit])
    test_x, test_y = load_split(args.data, "t10k")
    rows = args.rows.split(",")
    lines = []
    teacher = None

    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [args.seed]

    def record(row, model, seconds, seed, **extra):
        line = {"row": row, "test_top1": round(evaluate(model, test_x, test_y), 2), "seconds": round(seconds, 1),
                "epochs": args.epochs, "train_images": len(train_data[0]), "threads": threads, "seed": seed, "drop_last": args.drop_last,
                "torch": torch.__version__, **extra}
        print(json.dumps(line), flush=True)
        lines.append(line)

    if args.teacher_weights:
        teacher = load_retort_weights(DeepNN(), args.teacher_weights)
        record("teacher", teacher, 0.0, None, teacher_weights=args.teacher_weights)
    elif any(r in rows for r in ("teacher", "kd", "cosine", "regressor")):
        torch.manual_seed(args.seed)
        teacher = DeepNN()
        t0 = time.perf_counter()
        train(teacher, train_data, args.epochs, seed=args.seed)
        record("teacher", teacher, time.perf_counter() - t0, args.seed)
    cache_seconds = 0.0
    if teacher is not None and args.cache_teacher:
        t0 = time.perf_counter()
        teacher = TeacherOutputs(teacher, train_data[0])
        cache_seconds = time.perf_counter() - t0
    tag = {"teacher_weights": args.teacher_weights} if args.teacher_weights else {}
    if args.cache_teacher:
        tag["teacher_cache_seconds"] = round(cache_seconds, 1)
    for seed in seeds:
        for row, term in (("student", None), ("kd", kd_term), ("cosine", cosine_term), ("regressor", regressor_term)):
            if row not in rows:
                continue
            torch.manual_seed(seed)
            student = LightNN()
            if args.student_init:
                # Retort's initial weights; the regressor (not part of Retort's model) keeps its own.
                load_retort_weights(student, os.path.join(args.student_init, f"{row}-s{seed}"))
            t0 = time.perf_counter()
            train(student, train_data, args.epochs, term, teacher if term else None, seed=seed)
            init = {"student_init": args.student_init} if args.student_init else {}
            record(row, student, time.perf_counter() - t0, seed, **(tag if term else {}), **init)
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        for line in lines:
            f.write(json.dumps(line) + "\n")
    os.replace(args.out + ".tmp", args.out)


if __name__ == "__main__":
    main()
