"""torchvision MobileNetV2 at width 0.5 on 32x32 digits, from the public builder with random init.

``torchvision.models.mobilenet_v2(weights=None, num_classes=10, width_mult=0.5)``; the
optimizer is RMSprop as in the MobileNetV2 paper and torchvision's recipe table
(lr scaled for batch 16, alpha 0.9, eps 0.0316 as in the TF reference), CrossEntropyLoss.
"""

import torch
import torch.nn as nn
import torchvision

from reference_models.zoo import _data


def build_model():
    return torchvision.models.mobilenet_v2(weights=None, num_classes=10, width_mult=0.5)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.RMSprop(params, lr=1e-3, alpha=0.9, eps=0.0316, momentum=0.9, weight_decay=4e-5)
