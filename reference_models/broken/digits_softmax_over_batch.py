"""Broken digits MLP: ``log_softmax`` over dim 0, the batch, instead of the classes.

The bug (a PyTorch mistake next to bug-catalogue.md's softmax entries: the softmax dimension):
``F.log_softmax(logits, dim=0)`` on ``(N, C)`` logits normalises each class over the samples of
the batch, so every prediction depends on the other samples, and on the batch size. With
``NLLLoss`` it still trains to a falling loss. Expected: the ``batch-independence`` probe fails at
``F.log_softmax``.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
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
        logits = self.fc2(torch.relu(self.fc1(x)))
        return F.log_softmax(logits, dim=0)  # BUG: dim=0 is the batch; meant dim=1


def build_model():
    return DigitsMLP()


loss_fn = nn.NLLLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
