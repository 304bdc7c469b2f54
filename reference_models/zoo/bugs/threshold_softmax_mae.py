"""1-1-1 classifier of a 1-d threshold (y = x > 0.6): sigmoid hidden unit, softmax output, mean absolute
error, RMSprop, batches of 200.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def _load(n=1000):
    g = torch.Generator().manual_seed(45442843)
    x = torch.rand(n, 1, generator=g)
    return x, (x > 0.6).float()


def build_model():
    return nn.Sequential(nn.Linear(1, 1), nn.Sigmoid(), nn.Linear(1, 1), nn.Softmax(dim=1))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 200)


loss_fn = nn.L1Loss()


def build_optimizer(params):
    return torch.optim.RMSprop(params, lr=1e-3)
