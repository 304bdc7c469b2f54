"""Broken: ``nn.Sigmoid`` at the end of the model and ``BCEWithLogitsLoss`` in the training step.

The bug (bug-catalogue, PyTorch mistakes: "sigmoid before BCEWithLogitsLoss"): the loss applies
the sigmoid itself, so the model's probabilities p in (0, 1) become sigmoid(p) in (0.5, 0.73):
the prediction for class 0 can never fall below 0.5, and the loss has a floor far above zero.
The loss is computed in a ``training_step`` with ``F.binary_cross_entropy_with_logits``.
Expected: ``loss-setup`` fails (sigmoid before a with-logits loss).

Data: generated from a fixed seed: two Gaussian blobs in 10 dimensions, label = which blob.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


def _data(n=1024):
    g = torch.Generator().manual_seed(7)
    y = (torch.rand(n, generator=g) < 0.5).float()
    x = torch.randn(n, 10, generator=g) + (2 * y - 1).unsqueeze(1)
    return x, y.unsqueeze(1)


def build_model():
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1),
                         nn.Sigmoid())  # BUG: the loss below applies sigmoid again


def dataloader():
    x, y = _data()
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


def training_step(model, batch):
    x, y = batch
    return F.binary_cross_entropy_with_logits(model(x), y)
