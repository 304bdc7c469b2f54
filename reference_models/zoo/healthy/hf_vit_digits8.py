"""A tiny ViTForImageClassification from a config (random weights) on 8x8 digit images.

``ViTConfig(image_size=8, patch_size=2, num_channels=1, ...)``; the model is called as
``model(pixel_values=x, labels=y)`` and ``training_step`` returns ``.loss``, as in the
transformers image-classification examples. AdamW lr 1e-3.
"""

import torch
from transformers import ViTConfig, ViTForImageClassification

from reference_models.zoo import _data

config = ViTConfig(image_size=8, patch_size=2, num_channels=1, hidden_size=48, num_hidden_layers=2,
                   num_attention_heads=2, intermediate_size=96, num_labels=10)


def build_model():
    return ViTForImageClassification(config)


_x, _y = _data.digits_images(normalize=True)
train_loader = _data.batches(_x, _y, batch_size=32, limit=1024)


def training_step(model, batch):
    pixels, labels = batch
    return model(pixel_values=pixels, labels=labels).loss


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
