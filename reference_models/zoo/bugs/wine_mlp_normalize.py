"""MLP classifier on the wine data set, features scaled with sklearn.preprocessing.normalize, Adam."""

import torch
import torch.nn as nn
from sklearn.datasets import load_wine
from sklearn.preprocessing import normalize

from reference_models.zoo import _data


def _load():
    d = load_wine()
    x = torch.tensor(normalize(d.data), dtype=torch.float32)
    return x, torch.tensor(d.target, dtype=torch.long)


def build_model():
    return nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
