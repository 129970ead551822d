"""Measured cost of one GGN product of a CIFAR ResNet-18 (11.2M parameters) on CPU (issue 16).

``python benchmarks/resnet18_product.py [--batch 32] [--repeats 3]``: a standard CIFAR
ResNet-18 (3x3 stem, BasicBlocks [2, 2, 2, 2], batch norm in eval mode, float32), one
batch of random 32x32 images, one thread. Prints P, the batch, the median seconds of one
product (G @ v) and the seconds per sample; docs/scaling.md projects a full-CIFAR SLQ from
them. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import gn_theory as gt


class Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.short = nn.Sequential()
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(out)) + self.short(x))


def resnet18(num_classes: int = 10) -> nn.Module:
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = resnet18().eval()
    x, y = torch.randn(a.batch, 3, 32, 32), torch.randint(0, 10, (a.batch,))
    G = gt.ggn_operator(model, (x, y))
    v = torch.randn(G.num_params, 1)
    G @ v
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        G @ v
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    print(f"P={G.num_params} batch={a.batch} product_median_s={t:.3f} per_sample_s={t / a.batch:.4f}")


if __name__ == "__main__":
    main()
