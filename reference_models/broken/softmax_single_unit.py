"""Broken: softmax over a single output unit (bug-catalogue SO 31880720).

The bug (Stack Overflow 31880720, DeepLocalize benchmark, fault ACH): a 128-50-50-50 ReLU network
with dropout 0.2 ending in Dense(1) + softmax, binary cross-entropy, RMSprop, batch 1, on 10^4
all-ones vs 10^4 all-zeros vectors; reported loss 7.67 and accuracy 0.5 forever (fixed with a
sigmoid: accuracy 1.0). Softmax over a dimension of size 1 is the constant 1.0, whatever the input.
Expected: ``loss-setup`` fails (constant softmax, initial loss far above ln 2) and ``saturation``
fails (the softmax is stuck at its limit).

Data: generated as in the question (fewer samples).
"""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def _data(n=1024):
    y = (torch.arange(n) % 2).float().unsqueeze(1)
    x = y.repeat(1, 128)  # all-ones vectors are class 1, all-zeros vectors class 0
    return x, y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(128, 50), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(50, 50), nn.ReLU(), nn.Dropout(0.2),
            nn.Linear(50, 50), nn.ReLU(), nn.Dropout(0.2),
        )
        self.out = nn.Linear(50, 1)
        self.act = nn.Softmax(dim=1)  # BUG: softmax over one unit is always 1.0

    def forward(self, x):
        return self.act(self.out(self.body(x)))


def build_model():
    return Net()


def dataloader():
    x, y = _data()
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


loss_fn = nn.BCELoss()


def build_optimizer(params):
    return torch.optim.RMSprop(params, lr=1e-3)
