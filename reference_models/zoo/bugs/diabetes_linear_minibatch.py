"""Linear regression on sklearn's diabetes data (standardised features and target), minibatch SGD."""

import torch
import torch.nn as nn
from sklearn.datasets import load_diabetes

from reference_models.zoo import _data


def _load():
    d = load_diabetes()
    x = torch.tensor(d.data, dtype=torch.float32)
    y = torch.tensor(d.target, dtype=torch.float32).unsqueeze(1)
    return (x - x.mean(0)) / x.std(0), (y - y.mean()) / y.std()


def build_model():
    return nn.Linear(10, 1)


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 64)


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.35)
