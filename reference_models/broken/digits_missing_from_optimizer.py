"""Broken digits MLP: the optimizer is given only the first layer's parameters.

The bug (bug-catalogue.md, PyTorch mistakes: "parameters missing from the optimizer"; the check
pytest-torch 1.1 added): the equivalent of ``torch.optim.Adam(model.fc1.parameters())``. The other
layers get gradients but are never updated, so they stay at their random initialisation; the loss
still falls a little, which hides the bug. Expected: the ``updates`` probe fails naming
``fc2.weight`` and ``fc2.bias`` as missing from the optimizer.
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
    params = list(params)
    # BUG: only fc1.weight and fc1.bias (the first two, i.e. model.fc1.parameters()) are trained
    return torch.optim.Adam(params[:2], lr=1e-3)
