"""MLP on flat digits with ``nn.CrossEntropyLoss(label_smoothing=0.1)`` and SGD momentum.

Label smoothing as in "Rethinking the Inception Architecture" and torchvision's recipes
(--label-smoothing 0.1); the loss has a floor above zero by design. 64 -> 128 -> 10, SGD lr 0.1
momentum 0.9.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


_x, _y = _data.digits_flat()
train_loader = _data.loader(_x, _y, batch_size=32)

criterion = nn.CrossEntropyLoss(label_smoothing=0.1)


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)
