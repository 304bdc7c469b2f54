"""MLP classifier on the 8x8 digits (64-64-10, ReLU), SGD with momentum and gradient-norm clipping."""

import torch
import torch.nn as nn

from reference_models.zoo import _data

MAX_NORM = 1e-6


def build_model():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def dataloader():
    x, y = _data.digits_flat()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def train_step(model, optimizer, batch):
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), MAX_NORM)
    optimizer.step()
    return loss.item()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9)
