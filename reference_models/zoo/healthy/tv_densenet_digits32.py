"""A small torchvision DenseNet (growth 8, blocks (2, 2, 2)) on 32x32 digits, random init.

``torchvision.models.DenseNet(growth_rate, block_config, num_init_features, bn_size,
num_classes)``, the public class behind densenet121 with its widths reduced; SGD with
Nesterov momentum 0.9 and weight decay 1e-4 as in the DenseNet paper, CrossEntropyLoss.
"""

import torch
import torch.nn as nn
from torchvision.models import DenseNet

from reference_models.zoo import _data


def build_model():
    return DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, bn_size=2, num_classes=10)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-4)
