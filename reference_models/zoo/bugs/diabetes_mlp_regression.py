"""MLP regressor on sklearn's diabetes data (10 standardised features, target in hundreds), Adam."""

import torch
import torch.nn as nn
from sklearn.datasets import load_diabetes

from reference_models.zoo import _data


def _load():
    d = load_diabetes()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(d.target, dtype=torch.float32) / 100.0
    return x, y


def build_model():
    return nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32)


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-2)
