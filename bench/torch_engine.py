#!/usr/bin/env python3
"""PyTorch baseline for bench/engine.ts: the KD tutorial's DeepNN and LightNN and the zoo families
(RepDistiller's CIFAR ResNets, WRN, MobileNetV2, ShuffleNetV2, as defined in
packages/retort/test/fixtures/make_zoo_fixtures.py) on random 32x32x3 data, 10 classes.

Prints one JSON line per measurement on stdout:
  {"model": ..., "mode": "train"|"infer", "layout": "nchw"|"channels_last",
   "img_per_s": ..., "ms_per_step": ..., "batch": ..., "steps": ..., "threads": ..., "torch": ...}
train = forward + CrossEntropy + backward + Adam(1e-3) step in train mode (dropout on);
infer = forward under torch.no_grad() in eval mode. Warm-up steps are not timed.
Threads: torch.set_num_threads(OMP_NUM_THREADS, default 2). --seconds S times steps until S seconds
have passed (at least one) instead of a fixed --steps.

  OMP_NUM_THREADS=2 python3 bench/torch_engine.py --model deepnn --mode train --layout channels_last
"""
import argparse
import json
import os
import sys
import time

import torch
from torch import nn


class DeepNN(nn.Module):
    """The tutorial's teacher: 1,186,986 parameters for 10 classes."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 128, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(128, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(64, 64, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(64, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(2048, 512),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(512, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


class LightNN(nn.Module):
    """The tutorial's student: 267,738 parameters for 10 classes."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
            nn.Conv2d(16, 16, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(1024, 256),
            nn.ReLU(),
            nn.Dropout(0.1),
            nn.Linear(256, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packages", "retort", "test", "fixtures"))
import make_zoo_fixtures as zoo  # noqa: E402  (dev-time definitions shared with the zoo fixtures)


class LogitsOnly(nn.Module):
    """The fixture models return (logits, features, pre-activation features); training uses logits."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)[0]


MODELS = {
    "deepnn": DeepNN,
    "lightnn": LightNN,
    "resnet8": lambda: LogitsOnly(zoo.ResNet(8, [16, 16, 32, 64], 10)),
    "resnet20": lambda: LogitsOnly(zoo.ResNet(20, [16, 16, 32, 64], 10)),
    "resnet8x4": lambda: LogitsOnly(zoo.ResNet(8, [32, 64, 128, 256], 10)),
    "resnet32x4": lambda: LogitsOnly(zoo.ResNet(32, [32, 64, 128, 256], 10)),
    "wrn_16_2": lambda: LogitsOnly(zoo.WideResNet(16, 2, 10)),
    "mobilenetv2": lambda: LogitsOnly(zoo.MobileNetV2(6, 0.5, 10)),
    "shufflenetv2": lambda: LogitsOnly(zoo.ShuffleNetV2(1, 10)),
}


def measure(model_name: str, mode: str, layout: str, batch: int, steps: int, warmup: int, seconds: float) -> dict:
    torch.manual_seed(0)
    model = MODELS[model_name]()
    x = torch.randn(batch, 3, 32, 32)
    y = torch.randint(0, 10, (batch,))
    if layout == "channels_last":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    if mode == "train":
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loss_fn = nn.CrossEntropyLoss()

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(x), y)
            loss.backward()
            opt.step()
            loss.item()  # a host read, as the tfjs side does

    else:
        model.eval()

        def step() -> None:
            with torch.no_grad():
                model(x).sum().item()

    for _ in range(warmup):
        step()
    t0 = time.perf_counter()
    if seconds > 0:
        steps = 0
        while steps == 0 or time.perf_counter() - t0 < seconds:
            step()
            steps += 1
    else:
        for _ in range(steps):
            step()
    dt = time.perf_counter() - t0
    return {
        "model": model_name,
        "mode": mode,
        "layout": layout,
        "img_per_s": batch * steps / dt,
        "ms_per_step": 1000 * dt / steps,
        "batch": batch,
        "steps": steps,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=[*MODELS, "all"], default="all")
    p.add_argument("--mode", choices=["train", "infer", "all"], default="all")
    p.add_argument("--layout", choices=["nchw", "channels_last", "all"], default="all")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--seconds", type=float, default=0.0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args()
    if a.steps < 1 or a.warmup < 0 or a.batch < 1:
        p.error(f"need --steps >= 1, --warmup >= 0, --batch >= 1; got {a.steps}, {a.warmup}, {a.batch}")

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 2))
    models = list(MODELS) if a.model == "all" else [a.model]
    modes = ["train", "infer"] if a.mode == "all" else [a.mode]
    layouts = ["nchw", "channels_last"] if a.layout == "all" else [a.layout]
    for m in models:
        for mode in modes:
            for layout in layouts:
                print(json.dumps(measure(m, mode, layout, a.batch, a.steps, a.warmup, a.seconds)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
