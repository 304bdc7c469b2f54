"""torchvision ShuffleNetV2 with reduced stage widths on 32x32 digits (public class, random init).

``torchvision.models.ShuffleNetV2(stages_repeats, stages_out_channels, num_classes)`` with the
x0.5 model's layout shrunk to [2, 2, 2] repeats and [12, 24, 48, 96, 256] channels; SGD with
momentum 0.9 and weight decay 4e-5 as in the ShuffleNet paper, CrossEntropyLoss.
"""

import torch
import torch.nn as nn
from torchvision.models import ShuffleNetV2

from reference_models.zoo import _data


def build_model():
    return ShuffleNetV2([2, 2, 2], [12, 24, 48, 96, 256], num_classes=10)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=4e-5)
