"""Shared healthy pieces of the broken digits variants: data, model, loss and optimizer.

Each ``digits_*.py`` file imports what it keeps from here and changes exactly one thing (the bug
it is named after), so a probe that flags it flags that bug. Data: sklearn's bundled 8x8 digits
(offline, no download), the stand-in for MNIST suggested by bug-catalogue.md.
"""

import torch
import torch.nn as nn
from sklearn.datasets import load_digits


def dataloader():
    """sklearn's 8x8 digits (1,797 images, 64 pixels scaled to [0, 1]), shuffled, batches of 64."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
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
