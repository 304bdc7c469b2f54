"""Linear regression on sklearn's diabetes data (10 standardised features and target), full-batch gradient descent."""

import torch
import torch.nn as nn
from sklearn.datasets import load_diabetes


def _load():
    d = load_diabetes()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(d.target, dtype=torch.float32).unsqueeze(1)
    y = (y - y.mean()) / y.std()
    return x, y


def build_model():
    return nn.Linear(10, 1)


def sample_batch():
    return _load()


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.25)
