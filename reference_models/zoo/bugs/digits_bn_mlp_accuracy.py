"""MLP with BatchNorm and dropout on raw 8x8 digit pixels (0-16), a train_step that also reports the
batch accuracy, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.BatchNorm1d(64), nn.Linear(64, 128), nn.BatchNorm1d(128), nn.ReLU(),
                         nn.Dropout(0.5), nn.Linear(128, 10))


def dataloader():
    x, y = _data.digits_flat(scale=1.0)
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()
history = []


def train_step(model, optimizer, batch):
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    model.eval()
    with torch.no_grad():
        history.append((model(x).argmax(1) == y).float().mean().item())
    return loss.item()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
