"""edge-popup on a real (small) vision set: a conv net over scikit-learn's bundled 8x8 digits,
trained as a supermask (the top-k scores of each layer keep their frozen He-normal weights),
packed into a .tpk; its test accuracy and bytes beside the same net trained densely.

    python examples/edge_popup_digits.py               # 30 epochs each
    python examples/edge_popup_digits.py --epochs 2
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

import torch
from safetensors.torch import save as st_save
from sklearn.datasets import load_digits
from torch import nn

import ticketpack


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, padding=1)
        self.fc = nn.Linear(64 * 4 * 4, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(x))
        x = nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)  # (B, 64, 4, 4)
        return self.fc(x.flatten(1))


def digits() -> tuple[torch.Tensor, ...]:
    """1,797 images, the first 1,400 (shuffled once, seeded) to train on, the rest to test."""
    data = load_digits()
    x = torch.tensor(data.images, dtype=torch.float32)[:, None] / 16.0
    y = torch.tensor(data.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return x[:1400], y[:1400], x[1400:], y[1400:]


def fit(model: nn.Module, groups, x: torch.Tensor, y: torch.Tensor, epochs: int) -> None:
    opt = torch.optim.Adam(groups)
    gen = torch.Generator().manual_seed(1)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(64):
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model.eval()(x).argmax(1) == y).float().mean().item()


def main() -> None:
    p = argparse.ArgumentParser(description="edge-popup digits: supermask against dense")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--density", type=float, default=0.5, help="share of weights each layer keeps")
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "digits.tpk"))
    args = p.parse_args()
    x, y, x_test, y_test = digits()

    torch.manual_seed(0)
    dense = Net()
    fit(dense, [{"params": dense.parameters(), "lr": 1e-3}], x, y, args.epochs)
    dense_bytes = len(st_save({k: v.contiguous() for k, v in dense.state_dict().items()}))

    torch.manual_seed(0)
    net = ticketpack.supermask(Net(), "binary", seed=0, estimator="topk", density=args.density)
    fit(net, ticketpack.param_groups(net), x, y, args.epochs)
    saved = ticketpack.save(net, args.out)
    loaded = ticketpack.load(args.out, model=Net())  # the skeleton: the net's own code
    print(json.dumps({
        "dense": {"test_accuracy": round(accuracy(dense, x_test, y_test), 4), "bytes": dense_bytes,
                  "format": "float32 safetensors"},
        "edge_popup": {"test_accuracy": round(accuracy(loaded, x_test, y_test), 4), "bytes": saved["bytes"],
                       "density": args.density, "format": "tpk"},
        "test_images": len(y_test)}))


if __name__ == "__main__":
    main()
