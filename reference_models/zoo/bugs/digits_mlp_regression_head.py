"""MLP on the 8x8 digits with a single output unit trained by mean squared error on the digit value, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))


def dataloader():
    x, y = _data.digits_flat()
    return _data.batches(x, y.float().unsqueeze(1), 32, limit=1024)


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
