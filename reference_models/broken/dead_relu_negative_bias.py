"""Broken: every ReLU layer's bias initialised to -1, so the hidden units never switch on.

The bug: advice meant for the *gates* of highway networks (Srivastava et al. 2015: "initialise the
transform-gate bias to -1 or -3") applied to every layer of a plain ReLU MLP. With inputs scaled to
[0, 1] and the default weight scale, ``w.x`` is far smaller than 1, so ``w.x - 1 < 0`` for every
sample: each ReLU outputs 0 and passes no gradient (the dying-ReLU problem, bug-catalogue "a deep
narrow ReLU stack that dies"). Expected: ``dead-neurons`` fails on ``fc1 -> relu`` and
``fc2 -> relu`` (100% dead).

Data: scikit-learn's ``load_digits`` (8x8 digits, pixels / 16).
"""

import torch
import torch.nn as nn

from _digits_base import digits, shuffled_loader


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 32)
        self.fc3 = nn.Linear(32, 10)
        for layer in (self.fc1, self.fc2):
            nn.init.constant_(layer.bias, -1.0)  # BUG: gate-bias advice applied to ReLU layers

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def build_model():
    return MLP()


def dataloader():
    return shuffled_loader(*digits())


loss_fn = nn.CrossEntropyLoss()
