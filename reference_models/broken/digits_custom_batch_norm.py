"""Broken digits MLP: a hand-written normalisation over the batch dimension.

The bug (one of the batch-mixing mistakes named in issue 3, next to bug-catalogue.md's "view used
where permute was meant"; pytest-torch's batch-invariance test targets the same class): a home-made "standardise" layer computes the mean and standard deviation over dim 0, the batch.
Unlike ``nn.BatchNorm1d`` it keeps no running statistics, so even in eval mode each prediction
depends on the other samples in the batch (and a batch of one gives NaN). Expected: the
``batch-independence`` probe fails in the ``norm`` module.
"""

import torch
import torch.nn as nn
from _digits_base import dataloader, loss_fn, build_optimizer  # noqa: F401 - contract names


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
