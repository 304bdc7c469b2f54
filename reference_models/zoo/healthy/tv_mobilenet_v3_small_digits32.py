"""torchvision MobileNetV3-Small at width 0.5 on 32x32 digits (public builder, random init).

``torchvision.models.mobilenet_v3_small(weights=None, num_classes=10, width_mult=0.5)``, Adam
lr 1e-3 and CrossEntropyLoss, as in the common "train a torchvision model on CIFAR" tutorials.
"""

import torch
import torch.nn as nn
import torchvision

from reference_models.zoo import _data


def build_model():
    return torchvision.models.mobilenet_v3_small(weights=None, num_classes=10, width_mult=0.5)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=8)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
