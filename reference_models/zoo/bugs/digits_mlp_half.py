"""MLP classifier on the 8x8 digits (64-128-10, ReLU) in half precision, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10)).half()


def dataloader():
    x, y = _data.digits_flat()
    return _data.batches(x.half(), y, 32, limit=1024)


def loss_fn(output, target):
    return nn.functional.cross_entropy(output.float(), target)


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
