"""Broken: unscaled inputs saturate a tanh network, and a softmax sits on its single output
(bug-catalogue SO 33969059).

The bug (Stack Overflow 33969059, DeepLocalize benchmark, faults ACH and CPP): a 3-3 tanh - 2 tanh
(dropout 0.5) - 1 softmax regressor on inputs drawn from U(0, 10000)^3, targets
X.[2, 1, 0.5] + 2.2; reported loss 7.2e7. The inputs are thousands of times larger than tanh's
working range, so every hidden tanh is pinned at +-1 (no gradient), and softmax over one unit is the
constant 1.0, which can never reach targets in the thousands. Expected: ``saturation`` fails
(tanh units, and the softmax over a size-1 dimension) and ``loss-setup`` fails (constant softmax,
targets out of the output's range).

Data: generated from a fixed seed, as described in the question.
"""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def _data(n=1024):
    g = torch.Generator().manual_seed(33969059)
    x = torch.rand(n, 3, generator=g) * 10000.0  # BUG: not scaled
    y = x @ torch.tensor([[2.0], [1.0], [0.5]]) + 2.2
    return x, y


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 2)
        self.drop = nn.Dropout(0.5)
        self.out = nn.Linear(2, 1)

    def forward(self, x):
        x = torch.tanh(self.fc1(x))
        x = self.drop(torch.tanh(self.fc2(x)))
        return torch.softmax(self.out(x), dim=1)  # BUG: softmax over one unit


def build_model():
    return Net()


def dataloader():
    x, y = _data()
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


loss_fn = nn.MSELoss()
