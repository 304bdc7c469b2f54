"""A tiny torchvision ConvNeXt (three one-block stages) on 32x32 digits, random init.

``torchvision.models.ConvNeXt`` with ``CNBlockConfig`` stages (24 -> 48 -> 96 channels), the
stock layer-scale init 1e-6, no stochastic depth; AdamW (lr 1e-3, weight decay 0.05) as in the
ConvNeXt recipe, CrossEntropyLoss with label smoothing 0.1 as torchvision's recipe uses.
"""

import torch
import torch.nn as nn
from torchvision.models.convnext import CNBlockConfig, ConvNeXt

from reference_models.zoo import _data


def build_model():
    stages = [CNBlockConfig(24, 48, 1), CNBlockConfig(48, 96, 1), CNBlockConfig(96, None, 1)]
    return ConvNeXt(stages, stochastic_depth_prob=0.0, num_classes=10)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss(label_smoothing=0.1)


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
