"""Broken: SGD at lr 0.1 on an unscaled quadratic regression (bug-catalogue SO 48934338).

The bug (Stack Overflow 48934338, DeepLocalize benchmark, fault HLR): a 1-50-30-1 ReLU network
fitted to y = 5x^2 + noise for x = 0, 0.1, ..., 4.9 with mean squared error and plain SGD at
learning rate 0.1. The targets reach 120, so the first gradients are in the hundreds and a step of
0.1 times that throws the weights far past the minimum: the reported loss stayed at 1335 (with
lr 1e-3 it fell to 341). Here: the same network, data and optimizer, full batch of 50 points.
Expected: ``lr-range`` fails (the configured 0.1 lies beyond the LR at which the sweep's loss
diverged) and ``overfit`` fails (the loss becomes NaN/Inf within a few steps).
"""

import torch
import torch.nn as nn


def _data():
    g = torch.Generator().manual_seed(48934338)
    x = torch.arange(0, 5.0, 0.1).unsqueeze(1)  # 50 points, 0 .. 4.9
    y = 5 * x**2 + torch.randn(x.shape, generator=g) ** 3
    return x, y


def build_model():
    return nn.Sequential(nn.Linear(1, 50), nn.ReLU(), nn.Linear(50, 30), nn.ReLU(), nn.Linear(30, 1))


def sample_batch():
    return _data()


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.1)  # BUG: far too high for targets up to 120
