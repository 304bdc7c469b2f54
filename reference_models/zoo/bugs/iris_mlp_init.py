"""MLP classifier on iris (4 standardised features, 3 classes, 4-16-16-3 ReLU), its own init, SGD."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def dataloader():
    x, y = _data.iris()
    return _data.batches(x, y, 32)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)
