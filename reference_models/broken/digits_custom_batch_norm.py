"""Broken digits MLP: a hand-written normalisation over the batch dimension.

The bug (one of the batch-mixing mistakes named in issue 3, next to bug-catalogue.md's "view used
where permute was meant"; pytest-torch's batch-invariance test targets the same class): a home-made "standardise" layer computes the mean and standard deviation over dim 0, the batch.
Unlike ``nn.BatchNorm1d`` it keeps no running statistics, so even in eval mode each prediction
depends on the other samples in the batch (and a batch of one gives NaN). Expected: the
``batch-independence`` probe fails in the ``norm`` module.
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


class Standardize(nn.Module):
    def forward(self, x):
        return (x - x.mean(dim=0)) / (x.std(dim=0) + 1e-5)  # BUG: statistics over the batch


class DigitsMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.norm = Standardize()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.norm(self.fc1(x))))


def build_model():
    return DigitsMLP()


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
