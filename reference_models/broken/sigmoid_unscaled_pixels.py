"""Broken: unscaled pixels and a sigmoid output layer under cross-entropy (bug-catalogue SO 55328966).

The bug (Stack Overflow 55328966, DeepLocalize benchmark, faults ACH, OCH, CPP): 784-784 linear,
50 relu, 10 sigmoid, cross-entropy, plain gradient descent at lr 1e-4, on MNIST pixels 0-255 that
were never scaled; reported loss stuck at ln 10 = 2.3025 and accuracy 0.099. Here: the same layers on
scikit-learn's 8x8 digits with pixels multiplied by 16 (0-256, "unnormalised pixels"). The large
inputs push the output layer's inputs far beyond sigmoid's working range, so the outputs are pinned
at 0 or 1, and those probabilities then go into ``CrossEntropyLoss``, which expects logits.
Expected: ``saturation`` fails on the sigmoid, ``loss-setup`` fails (sigmoid before
CrossEntropyLoss).
"""

import torch
import torch.nn as nn

from _digits_base import digits, shuffled_loader


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 784)
        self.fc2 = nn.Linear(784, 50)
        self.fc3 = nn.Linear(50, 10)

    def forward(self, x):
        x = self.fc1(x)
        x = torch.relu(self.fc2(x))
        return torch.sigmoid(self.fc3(x))  # BUG: probabilities into CrossEntropyLoss


def build_model():
    return Net()


def dataloader():
    return shuffled_loader(*digits(scale=16.0))  # BUG: pixels 0-256, not scaled


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=1e-4)
