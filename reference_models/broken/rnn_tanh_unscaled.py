"""Broken: a tanh RNN fed raw, unscaled values: its hidden units are saturated from the first step.

The bug (bug-catalogue SO 52800582 and 33969059, fault CPP: no input scaling; here in a recurrent
model): next-value regression on a price-like series in the thousands, fed to ``nn.RNN`` (tanh)
without normalisation. ``W_ih x`` is in the hundreds, so every hidden unit sits at +-1 where tanh's
gradient is ~0 and nothing before it can learn. Expected: ``saturation`` fails on ``rnn``.

Data: generated from a fixed seed (a random walk around 2000).
"""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset

SEQ_LEN = 20


def _data(n=512):
    g = torch.Generator().manual_seed(52800582)
    steps = torch.randn(n, SEQ_LEN + 1, generator=g) * 20.0
    series = 2000.0 + torch.cumsum(steps, dim=1)  # BUG: raw values, never standardised
    return series[:, :SEQ_LEN].unsqueeze(-1), series[:, SEQ_LEN:]


class Forecaster(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(1, 32, batch_first=True)
        self.fc = nn.Linear(32, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def build_model():
    return Forecaster()


def dataloader():
    x, y = _data()
    return DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True,
                      generator=torch.Generator().manual_seed(0))


loss_fn = nn.MSELoss()
