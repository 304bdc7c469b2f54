"""Broken: softmax output on multi-label targets (bug-catalogue SO 38648195).

The bug (Stack Overflow 38648195, DeepLocalize benchmark, faults ACH and LCH): a 20-20 relu - 20
relu (dropout 0.5) - 3 softmax network trained with MSE on targets where a sample can carry several
of the 3 labels at once; reported accuracy 0.63 (0.76 with sigmoid + binary cross-entropy).
Softmax makes the labels compete for one unit of probability, so two labels can never both be
predicted. Expected: ``loss-setup`` fails (multi-hot targets with softmax).

Data: generated from a fixed seed: 20 features, each label on when a random projection is positive.
"""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def _data(n=1024):
    g = torch.Generator().manual_seed(38648195)
    x = torch.randn(n, 20, generator=g)
    w = torch.randn(20, 3, generator=g)
    y = (x @ w > 0).float()  # multi-hot: a row may have 0, 1, 2 or 3 labels set
    return x, y


def build_model():
    return nn.Sequential(
        nn.Linear(20, 20), nn.ReLU(),
        nn.Linear(20, 20), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(20, 3), nn.Softmax(dim=1),  # BUG: labels are not mutually exclusive
    )


def dataloader():
    x, y = _data()
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01)
