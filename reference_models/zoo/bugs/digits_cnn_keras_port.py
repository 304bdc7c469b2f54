"""CNN on the 8x8 digits ported from a Keras tutorial (conv32-pool-conv16-fc64-fc10), Adam.
"""

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

from reference_models.zoo import _data


def _load():
    d = load_digits()
    x_train = d.images.astype(np.float32)
    y_train = d.target
    x_train = x_train / 16.0
    y_train = (y_train / 255).astype(np.int64)
    return torch.tensor(x_train).unsqueeze(1), torch.tensor(y_train)


def build_model():
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(16 * 2 * 2, 64), nn.ReLU(), nn.Linear(64, 10))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
