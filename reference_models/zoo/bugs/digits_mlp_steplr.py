"""MLP classifier on the 8x8 digits (64-64-10, ReLU), SGD with a StepLR schedule stepped in the loop."""

import torch
import torch.nn as nn

from reference_models.zoo import _data

schedulers = {}


def build_model():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def dataloader():
    x, y = _data.digits_flat()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    optimizer = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    schedulers[id(optimizer)] = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    return optimizer


def train_step(model, optimizer, batch):
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    schedulers[id(optimizer)].step()
    return loss.item()
