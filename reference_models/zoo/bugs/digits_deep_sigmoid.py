"""Deep MLP classifier on the 8x8 digits: 10 hidden layers of 32 sigmoid units, SGD with momentum."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    layers, width = [], 64
    for _ in range(10):
        layers += [nn.Linear(width, 32), nn.Sigmoid()]
        width = 32
    return nn.Sequential(*layers, nn.Linear(32, 10))


def dataloader():
    x, y = _data.digits_flat()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)
