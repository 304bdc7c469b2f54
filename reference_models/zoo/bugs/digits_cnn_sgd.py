"""Small CNN on the 8x8 digits (conv16-conv32-pool-fc64-fc10), plain SGD at lr 1e-3."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def dataloader():
    x, y = _data.digits_images()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=1e-3)
