"""torchvision ResNet (BasicBlock, one block per stage) trained from scratch on 32x32 digits.

Follows the torchvision classification reference recipe (references/classification/train.py:
SGD, momentum 0.9, weight decay 1e-4, CrossEntropyLoss) with the model built from the public
``torchvision.models.resnet.ResNet`` class, random init, 10 classes; lr scaled down from 0.1 for
batch 8 instead of 256, as the linear-scaling rule says.
"""

import torch
import torch.nn as nn
from torchvision.models.resnet import BasicBlock, ResNet

from reference_models.zoo import _data


def build_model():
    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=8)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=1e-4)
