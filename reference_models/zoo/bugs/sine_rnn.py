"""Elman RNN (ReLU, 32 units) predicting the next value of noisy sine waves from 40 steps, with its own
recurrent-weight initialisation, Adam."""

import math

import torch
import torch.nn as nn

from reference_models.zoo import _data


def _load(n=256, steps=40):
    g = torch.Generator().manual_seed(21)
    phase = torch.rand(n, 1, generator=g) * 2 * math.pi
    t = torch.arange(steps + 1).float() * 0.3
    wave = torch.sin(t + phase) + 0.05 * torch.randn(n, steps + 1, generator=g)
    return wave[:, :-1].unsqueeze(-1), wave[:, -1:]


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.RNN(1, 32, nonlinearity="relu", batch_first=True)
        nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=2.0)
        self.fc = nn.Linear(32, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def build_model():
    return Net()


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32)


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
