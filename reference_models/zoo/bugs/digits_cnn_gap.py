"""All-convolutional classifier on the 8x8 digits (NIN-style: conv layers, a 1x1 conv to 10 class
maps, global average pooling), Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 10, 1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten())


def dataloader():
    x, y = _data.digits_images()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
