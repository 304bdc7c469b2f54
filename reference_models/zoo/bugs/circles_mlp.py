"""MLP classifier (2-32-32-2) on sklearn's concentric circles, Adam."""

import torch
import torch.nn as nn
from sklearn.datasets import make_circles

from reference_models.zoo import _data


def _load():
    x, y = make_circles(n_samples=512, noise=0.05, factor=0.5, random_state=0)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def build_model():
    return nn.Sequential(nn.Linear(2, 32), nn.Identity(), nn.Linear(32, 32), nn.Identity(), nn.Linear(32, 2))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-2)
