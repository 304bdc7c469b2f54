"""Broken: no nonlinearity, MSE on one-hot targets, N(0,1) weights and SGD at lr 3.0
(bug-catalogue SO 48385830).

The bug (Stack Overflow 48385830, DeepLocalize benchmark, faults ACH, LCH, HLR): a 784-30-10
network with no activation at all, weights and biases drawn from N(0, 1), mean squared error on
one-hot labels and plain SGD at learning rate 3.0 with batches of 10 (the learning rate of Nielsen's
sigmoid network, kept after the sigmoids were dropped); reported loss NaN and accuracy 0.10. Here:
the same design on scikit-learn's 8x8 digits scaled to [0, 1] (64-30-10). Without the sigmoids
that once bounded each layer, lr 3.0 with N(0,1) weights makes the updates explode.
Expected: ``lr-range`` fails (3.0 lies far beyond the LR where the sweep's loss diverged) and
``overfit`` fails (the loss becomes NaN/Inf).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32) / 16.0
    y = F.one_hot(torch.tensor(d.target, dtype=torch.long), 10).float()  # one-hot for MSE
    return x, y


def build_model():
    model = nn.Sequential(nn.Linear(64, 30), nn.Linear(30, 10))  # BUG: no nonlinearity
    for p in model.parameters():
        nn.init.normal_(p, 0.0, 1.0)  # as in the original: weights and biases ~ N(0, 1)
    return model


def dataloader():
    x, y = _digits()
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return [(x[i:i + 10], y[i:i + 10]) for i in range(0, len(y), 10)]


loss_fn = nn.MSELoss()  # BUG: MSE on one-hot targets for classification


def build_optimizer(params):
    return torch.optim.SGD(params, lr=3.0)  # BUG: huge LR
