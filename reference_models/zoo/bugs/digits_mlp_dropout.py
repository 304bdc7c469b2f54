"""MLP classifier on the 8x8 digits (64-128-64-10, ReLU) with dropout, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 64), nn.ReLU(),
                         nn.Dropout(0.9), nn.Linear(64, 10))


def dataloader():
    x, y = _data.digits_flat()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
