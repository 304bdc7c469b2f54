"""Broken: a learning rate far too low for a tiny sigmoid network's budget (bug-catalogue SO 50306988).

The bug (Stack Overflow 50306988, DeepLocalize benchmark, faults HLR, HNE): a 2-2-2 network with a
sigmoid hidden layer and a softmax output (here logits + ``CrossEntropyLoss``, the PyTorch
equivalent), Adam at lr 1e-3 for 5 epochs, on 200 points drawn from U(0.2, 0.4)^2 (class 0) and
U(0.5, 0.7)^2 (class 1). The classes are trivially separable, yet accuracy stayed at 0.5: at lr 1e-3
the few weights barely move within the budget (with lr 1e-2: accuracy 1.0).
Expected: ``overfit`` fails (the loss hardly falls within its step budget) and ``lr-range`` warns
that the configured LR lies a decade or more below the suggested range.
"""

import torch
import torch.nn as nn


def _data():
    g = torch.Generator().manual_seed(50306988)
    a = 0.2 + 0.2 * torch.rand(100, 2, generator=g)
    b = 0.5 + 0.2 * torch.rand(100, 2, generator=g)
    x = torch.cat([a, b])
    y = torch.cat([torch.zeros(100, dtype=torch.long), torch.ones(100, dtype=torch.long)])
    order = torch.randperm(200, generator=g)
    return x[order], y[order]


def build_model():
    return nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 2))


def dataloader():
    x, y = _data()
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 200, 32)]


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)  # BUG: too low for this budget (1e-2 works)
