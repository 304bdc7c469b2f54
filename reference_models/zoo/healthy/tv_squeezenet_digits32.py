"""torchvision SqueezeNet 1.0 on 32x32 digits, from the public class with random init.

``torchvision.models.SqueezeNet(version="1_0", num_classes=10)`` as is (final 1x1 conv, ReLU and
global average pool form the classifier, as in the paper); Adam lr 3e-4 (SqueezeNet from scratch is known to stall at
ln 10 with larger rates: its ReLU after the last conv dies), CrossEntropyLoss.
"""

import torch
import torch.nn as nn
from torchvision.models import SqueezeNet

from reference_models.zoo import _data


def build_model():
    return SqueezeNet(version="1_0", num_classes=10)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-4)
