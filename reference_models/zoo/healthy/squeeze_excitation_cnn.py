"""A small CNN with squeeze-and-excitation blocks (torchvision.ops.SqueezeExcitation) on 8x8 digits.

Conv-BN-ReLU stages each followed by ``torchvision.ops.SqueezeExcitation(c, c // 4)`` (global
pool, two 1x1 convs, sigmoid channel gates), as in SENet (Hu et al.) and the SE blocks of
torchvision's MobileNetV3/EfficientNet; Adam lr 1e-3, CrossEntropyLoss.
"""

import torch
import torch.nn as nn
from torchvision.ops import SqueezeExcitation

from reference_models.zoo import _data


def stage(cin, cout, stride):
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True), SqueezeExcitation(cout, cout // 4),
    )


def build_model():
    return nn.Sequential(stage(1, 16, 1), stage(16, 32, 2), stage(32, 64, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


_x, _y = _data.digits_images(normalize=True)
train_loader = _data.loader(_x, _y, batch_size=32)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
