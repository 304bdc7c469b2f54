"""MLP classifier on the 8x8 digits, data shuffled with numpy before batching, Adam."""

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits


def _load():
    d = load_digits()
    x, y = d.data / 16.0, d.target
    rng = np.random.default_rng(0)
    x = x[rng.permutation(len(x))]
    y = y[rng.permutation(len(y))]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def build_model():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def dataloader():
    x, y = _load()
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 1024, 32)]


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
