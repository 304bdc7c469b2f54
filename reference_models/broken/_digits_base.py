"""Shared healthy pieces of the broken digits variants: data, model, loss and optimizer.

Each ``digits_*.py`` file imports what it keeps from here and changes exactly one thing (the bug
it is named after), so a probe that flags it flags that bug. Data: sklearn's bundled 8x8 digits
(offline, no download), the stand-in for MNIST suggested by bug-catalogue.md.
"""

import torch
import torch.nn as nn
from sklearn.datasets import load_digits
from torch.utils.data import DataLoader, TensorDataset


def digits(scale: float = 1 / 16, images: bool = False):
    """sklearn's 8x8 digits: (x, y), 1,797 samples. ``scale`` multiplies the 0-16 pixels (1/16 puts
    them in [0, 1]; a variant reproducing unscaled pixels passes 16); ``images`` gives (N, 1, 8, 8)."""
    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) * scale
    if images:
        x = x.reshape(-1, 1, 8, 8)
    return x, torch.tensor(d.target, dtype=torch.long)


def shuffled_loader(x, y, batch_size: int = 64):
    """A DataLoader over (x, y), shuffled with a fixed seed."""
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def dataloader():
    """The digits scaled to [0, 1], shuffled once with a fixed seed, in batches of 64."""
    x, y = digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(y), 64)]


class DigitsMLP(nn.Module):
    """A healthy 64-32-10 ReLU MLP."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def build_model():
    return DigitsMLP()


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
