"""MLP classifier on the 8x8 digits read from a table (pixels and a label column), Adam."""

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

from reference_models.zoo import _data


def _table():
    d = load_digits()
    return np.hstack([d.data / 16.0, d.target[:, None]]).astype(np.float32)


def _load():
    table = _table()
    x = torch.tensor(table[:, :-1])
    labels = torch.tensor(table[:, -1:])
    y = labels.argmax(dim=1)
    return x, y


def build_model():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
