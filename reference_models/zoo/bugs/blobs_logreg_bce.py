"""Logistic-regression-style MLP on two Gaussian blobs, binary cross-entropy written out, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def _load():
    x, y = _data.blobs(n=512, centers=2, features=4, std=1.0, seed=3)
    return x, y.float().unsqueeze(1)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 16)
        self.fc2 = nn.Linear(16, 1)

    def forward(self, x):
        return torch.sigmoid(self.fc2(torch.relu(self.fc1(x))))


def build_model():
    return Net()


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 64)


def loss_fn(p, y):
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=0.03)
