"""MLP classifier on sklearn's breast-cancer data (30 features, 2 classes), Adam."""

import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer
from sklearn.preprocessing import StandardScaler

from reference_models.zoo import _data


def _load():
    d = load_breast_cancer()
    x = StandardScaler().fit_transform(d.data)
    x = torch.tensor(x, dtype=torch.float32) / 255.0
    return x, torch.tensor(d.target, dtype=torch.long)


def build_model():
    return nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
