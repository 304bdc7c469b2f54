"""MLP with BatchNorm1d trained with batch size 2 (a memory-bound setup that still works, noisily).

8 -> 64 (Linear-BatchNorm1d-ReLU) -> 4 on Gaussian blobs (4 classes, 8 features), batches of 2 from a shuffling
DataLoader, Adam lr 1e-3. BatchNorm's batch statistics over 2 samples are noisy but usable.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(8, 64), nn.BatchNorm1d(64), nn.ReLU(), nn.Linear(64, 4))


_x, _y = _data.blobs(512, centers=4, features=8, std=2.0)
train_loader = _data.loader(_x, _y, batch_size=2)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
