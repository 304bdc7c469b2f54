"""Wine classifier (13 standardised features, 3 classes) with SGD momentum and a plain train_step.

The textbook loop written out by the user: ``optimizer.zero_grad()``, forward, CrossEntropyLoss,
``backward()``, ``step()``, returning ``loss.item()``; SGD lr 0.01, momentum 0.9, batches of 16.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(13, 32), nn.ReLU(), nn.Linear(32, 3))


_x, _y = _data.wine()
train_loader = _data.loader(_x, _y, batch_size=16)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)


def train_step(model, optimizer, batch):
    inputs, labels = batch
    optimizer.zero_grad()
    outputs = model(inputs)
    loss = criterion(outputs, labels)
    loss.backward()
    optimizer.step()
    return loss.item()
