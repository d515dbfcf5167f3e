#!/usr/bin/env python3
"""PyTorch side of `npm run bench:tutorial-equivalence` (bench/tutorial-equivalence.ts): loads the
initial weights and the exact batches that Retort wrote, takes the same Adam steps (lr 0.001, CE,
dropout off) on the tutorial's model, and prints the per-step losses as one JSON line.

Retort's layouts are NHWC: conv kernels HWIO become OIHW, dense kernels [in, out] are transposed,
and the features are flattened in Retort's (h, w, c) order (permuted to NHWC before flatten), so
the first linear layer's columns line up without permuting its weights.

A dev-time check (Debian's python3-torch 1.13), never a dependency of the product.
  OMP_NUM_THREADS=2 /usr/bin/python3 bench/tutorial_equivalence.py <dir> <deepnn|lightnn> <steps>
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tutorial_torch import DeepNN, LightNN  # noqa: E402


def main():
    folder, name, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    manifest = json.load(open(os.path.join(folder, "weights.json")))
    flat = np.fromfile(os.path.join(folder, "weights.bin"), dtype=np.float32)
    model = DeepNN() if name == "deepnn" else LightNN()
    layers = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
    layers += [m for m in model.classifier if isinstance(m, torch.nn.Linear)]
    if len(manifest) != 2 * len(layers):
        raise SystemExit(f"{len(manifest)} weight tensors for {len(layers)} layers (kernel and bias each)")

    def tensor(i):
        e = manifest[i]
        return flat[e["offset"]:e["offset"] + int(np.prod(e["shape"]))].reshape(e["shape"])

    with torch.no_grad():
        for i, layer in enumerate(layers):
            k = tensor(2 * i)
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(k.transpose(3, 2, 0, 1) if k.ndim == 4 else k.T)))
            layer.bias.copy_(torch.from_numpy(tensor(2 * i + 1)))
    x = torch.from_numpy(np.fromfile(os.path.join(folder, "inputs.bin"), dtype=np.float32).reshape(-1, 28, 28, 1))
    x = x.permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(np.fromfile(os.path.join(folder, "labels.bin"), dtype=np.int32).astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    model.eval()  # no dropout: its masks are the one random draw the two sides cannot share
    losses = []
    for s in range(steps):
        xb, yb = x[s * 128:(s + 1) * 128], y[s * 128:(s + 1) * 128]
        opt.zero_grad()
        logits = model.classifier(model.features(xb).permute(0, 2, 3, 1).flatten(1))
        loss = F.cross_entropy(logits, yb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    print(json.dumps({"losses": losses}))


if __name__ == "__main__":
    main()
