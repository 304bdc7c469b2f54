"""A deep (8 hidden layers) tanh MLP with Xavier/Glorot init on flat digits.

Glorot & Bengio (2010)'s setting: tanh units with ``nn.init.xavier_uniform_`` weights (gain for
tanh) and zero biases keep activations and gradients at a stable scale through depth; width 64,
SGD lr 0.05 momentum 0.9, CrossEntropyLoss.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    layers, d = [], 64
    for _ in range(8):
        layers += [nn.Linear(d, 64), nn.Tanh()]
        d = 64
    model = nn.Sequential(*layers, nn.Linear(64, 10))
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight, gain=nn.init.calculate_gain("tanh"))
            nn.init.zeros_(m.bias)
    return model


_x, _y = _data.digits_flat()
train_loader = _data.loader(_x, _y, batch_size=32)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)
