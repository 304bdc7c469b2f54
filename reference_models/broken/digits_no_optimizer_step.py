"""Broken digits MLP: a ``train_step`` that forgets ``optimizer.step()``.

The bug (a PyTorch mistake in the same family as bug-catalogue.md's "a training step that never
calls zero_grad()"; torchtest's ``assert_vars_change`` exists for it): gradients are computed and
cleared every step, but never applied, so the model stays at its initialisation while the loop
runs without an error. Expected: the ``updates`` probe fails ("One optimizer step changed none of
the 4 trainable parameter tensors").
"""

import torch
import torch.nn as nn
from sklearn.datasets import load_digits


def dataloader():
    """sklearn's 8x8 digits (1,797 images, 64 pixels scaled to [0, 1]), shuffled, batches of 64."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(y), 64)]


class DigitsMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


def build_model():
    return DigitsMLP()


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)


def train_step(model, optimizer, batch):
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()  # BUG: optimizer.step() is missing, so nothing is ever updated
    return loss.item()
