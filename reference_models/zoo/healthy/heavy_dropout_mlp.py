"""MLP with heavy dropout (0.5 on the input, 0.6 on the hidden layers) on flat digits.

The Hinton et al. / Srivastava et al. dropout-MLP recipe (large hidden layers, p=0.5+ dropout,
SGD with momentum 0.9), scaled down: 64 -> 256 -> 256 -> 10, SGD lr 0.05.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(
        nn.Dropout(0.5), nn.Linear(64, 256), nn.ReLU(), nn.Dropout(0.6),
        nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.6), nn.Linear(256, 10),
    )


_x, _y = _data.digits_flat()
train_loader = _data.loader(_x, _y, batch_size=32)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)
