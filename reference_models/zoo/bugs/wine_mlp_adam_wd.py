"""MLP classifier on the wine data set (13 standardised features, 3 classes), Adam with weight decay."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))


def dataloader():
    x, y = _data.wine()
    return _data.batches(x, y, 32)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-2, weight_decay=1.0)
