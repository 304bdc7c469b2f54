"""timm ConvNeXt-Atto (random init) on 32x32 digits, via ``timm.create_model``.

``timm.create_model("convnext_atto", pretrained=False, num_classes=10)``, the smallest registered
ConvNeXt, with timm's default layer-scale init; AdamW lr 1e-3, weight decay 0.05, CrossEntropyLoss.
"""

import timm
import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return timm.create_model("convnext_atto", pretrained=False, num_classes=10)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=8)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
