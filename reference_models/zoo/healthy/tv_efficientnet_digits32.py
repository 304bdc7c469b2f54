"""A width/depth-reduced EfficientNet-B0 from torchvision's public classes, on 32x32 digits.

The B0 stage table (``torchvision.models.efficientnet``: MBConvConfig(expand, kernel, stride, in,
out, layers)) with width_mult 0.25 and depth_mult 0.25 fed to ``EfficientNet``, random init,
stochastic depth 0.2 and dropout 0.2 as in the B0 builder; AdamW and CrossEntropyLoss.
"""

import torch
import torch.nn as nn
from torchvision.models.efficientnet import EfficientNet, MBConvConfig

from reference_models.zoo import _data

WIDTH, DEPTH = 0.25, 0.25


def build_model():
    def cfg(*args):
        return MBConvConfig(*args, width_mult=WIDTH, depth_mult=DEPTH)

    setting = [
        cfg(1, 3, 1, 32, 16, 1),
        cfg(6, 3, 2, 16, 24, 2),
        cfg(6, 5, 2, 24, 40, 2),
        cfg(6, 3, 2, 40, 80, 3),
        cfg(6, 5, 1, 80, 112, 3),
        cfg(6, 5, 2, 112, 192, 4),
        cfg(6, 3, 1, 192, 320, 1),
    ]
    return EfficientNet(setting, dropout=0.2, stochastic_depth_prob=0.2, num_classes=10, last_channel=256)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=8)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
