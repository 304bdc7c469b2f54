"""Broken: a sigmoid output for regression targets above 1 (bug-catalogue SO 48221692).

The bug (Stack Overflow 48221692, DeepLocalize benchmark, fault ACH): a 1-5 sigmoid - 1 sigmoid
network fitted to y = x^2 with MSE and SGD, full batch; reported loss 2311 (122 with a linear
output). A sigmoid outputs values in (0, 1), so every target above 1 is out of reach whatever the
weights. Expected: ``loss-setup`` fails (targets outside the output's range).

Data: generated: x evenly spaced in [-10, 10], y = x^2.
"""

import torch
import torch.nn as nn


def sample_batch():
    x = torch.linspace(-10.0, 10.0, 256).unsqueeze(1)
    return x, x ** 2


def build_model():
    return nn.Sequential(nn.Linear(1, 5), nn.Sigmoid(), nn.Linear(5, 1),
                         nn.Sigmoid())  # BUG: outputs in (0, 1), targets up to 100


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01)
