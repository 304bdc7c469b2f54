"""Regression on raw, unscaled count features (rooms 1-9, visits ~50, age 0-99) with an MLP.

A tabular regression written without feature scaling, as many quick scripts are: 3 raw features
-> 64 ReLU -> 1, MSELoss on a target in units of about 1, Adam lr 1e-3 (Adam's per-parameter
scaling copes with the inputs' ranges).
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 1))


_x, _y = _data.raw_count_regression(512)
train_loader = _data.loader(_x, _y, batch_size=32)

loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
