"""VGG with batch norm from torchvision's ``make_layers`` on 32x32 digits, CIFAR-style head.

The common CIFAR recipe for torchvision VGG: ``VGG(make_layers(cfg, batch_norm=True))`` with a
narrowed VGG-11 layout, the 7x7 average pool replaced by a global one and the 4096-wide
classifier by a small one (32x32 inputs leave 1x1 maps). SGD momentum 0.9, CrossEntropyLoss.
"""

import torch
import torch.nn as nn
from torchvision.models.vgg import VGG, make_layers

from reference_models.zoo import _data

CFG = [16, "M", 32, "M", 64, 64, "M", 128, 128, "M"]


def build_model():
    model = VGG(make_layers(CFG, batch_norm=True), num_classes=10)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(
        nn.Linear(128, 128), nn.ReLU(True), nn.Dropout(0.5), nn.Linear(128, 10)
    )
    return model


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9, weight_decay=5e-4)
