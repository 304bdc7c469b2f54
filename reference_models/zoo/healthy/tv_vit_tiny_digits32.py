"""torchvision VisionTransformer with a tiny config (2 layers, 2 heads, width 32) on 32x32 digits.

``torchvision.models.VisionTransformer(image_size=32, patch_size=8, ...)``, the public class behind
vit_b_16, random init (its classification head starts at zero, as torchvision initialises it);
AdamW lr 1e-3 weight decay 0.01, CrossEntropyLoss.
"""

import torch
import torch.nn as nn
from torchvision.models import VisionTransformer

from reference_models.zoo import _data


def build_model():
    return VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                             hidden_dim=32, mlp_dim=64, num_classes=10)


_x, _y = _data.digits_rgb(32, limit=512)
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
