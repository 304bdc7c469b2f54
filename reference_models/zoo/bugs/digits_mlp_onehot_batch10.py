"""MLP classifier on the 8x8 digits with one-hot label vectors, batches of 10, SGD."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data


def _load():
    x, y = _data.digits_flat()
    return x, F.one_hot(y, 10).float()


def build_model():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 10, limit=1000)


criterion = nn.CrossEntropyLoss()


def training_step(model, batch):
    x, onehot = batch
    return criterion(model(x), onehot.argmax(dim=0))


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)
