"""timm MobileNetV3-Small x0.5 (random init) on 32x32 digits, with the drop rate timm's CLI exposes.

``timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10, drop_rate=0.2)``;
Adam lr 1e-3, CrossEntropyLoss with label smoothing 0.1 (timm's --smoothing default).
"""

import timm
import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return timm.create_model("mobilenetv3_small_050", pretrained=False, num_classes=10, drop_rate=0.2)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss(label_smoothing=0.1)


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
