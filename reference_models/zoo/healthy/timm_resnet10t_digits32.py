"""timm ResNet-10-T (random init) on 32x32 digits, built the way timm's docs show.

``timm.create_model("resnet10t", pretrained=False, num_classes=10)``; AdamW lr 1e-3 with weight
decay 0.01 and CrossEntropyLoss, the defaults of timm's train.py with a smaller batch.
"""

import timm
import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return timm.create_model("resnet10t", pretrained=False, num_classes=10)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=8)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
