"""MLP regressor (8-32-1, tanh) on a synthetic smooth target, with a hand-written SGD update."""

import torch
import torch.nn as nn

from reference_models.zoo import _data

LR = 0.05


def _load():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(512, 8, generator=g)
    y = (torch.sin(x[:, :4]).sum(1) + 0.5 * x[:, 4:].pow(2).mean(1)).unsqueeze(1)
    return x, y


def build_model():
    return nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 64)


loss_fn = nn.MSELoss()


def train_step(model, optimizer, batch):
    x, y = batch
    model.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p += LR * p.grad
    return loss.item()
