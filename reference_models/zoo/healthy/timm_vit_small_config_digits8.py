"""timm ViT with a tiny config (8x8 grey images, patch 2, depth 2, width 48) on digits, random init.

``timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=8,
patch_size=2, in_chans=1, embed_dim=48, depth=2, num_heads=3)``: timm's documented way to shrink
a registered architecture with keyword overrides. AdamW lr 1e-3, weight decay 0.05,
CrossEntropyLoss.
"""

import timm
import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=10, img_size=8,
                             patch_size=2, in_chans=1, embed_dim=48, depth=2, num_heads=3)


_x, _y = _data.digits_images(normalize=True)
train_loader = _data.loader(_x, _y, batch_size=32, limit=1024)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.05)
