"""Broken: a deep, narrow ReLU stack (16 hidden layers of 3 units) that is dead at initialisation.

The bug (bug-catalogue: "a deep narrow ReLU stack that dies"; Lu et al. 2019, "Dying ReLU and
Initialization": a deep ReLU network of small width is born dead with high probability): each
layer shrinks the signal (PyTorch's default Linear init has a third of He's variance), so a few
layers down every unit's input is its bias alone, constant over all samples; a unit whose bias is
negative is dead for every input, and once a whole layer is dead the network's output is a
constant. Expected: ``dead-neurons`` fails on the deep layers.

Data: scikit-learn's ``load_digits`` (8x8 digits, pixels / 16).
"""

import torch.nn as nn

from _digits_base import digits, shuffled_loader

DEPTH = 16
WIDTH = 3


def build_model():
    layers = [nn.Linear(64, WIDTH), nn.ReLU()]
    for _ in range(DEPTH - 1):
        layers += [nn.Linear(WIDTH, WIDTH), nn.ReLU()]  # BUG: far too narrow for this depth
    layers.append(nn.Linear(WIDTH, 10))
    return nn.Sequential(*layers)


def dataloader():
    return shuffled_loader(*digits())


loss_fn = nn.CrossEntropyLoss()
