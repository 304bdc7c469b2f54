"""Broken: ``NLLLoss`` on raw scores, with no ``log_softmax`` in the model.

The bug (a classic PyTorch mistake, the mirror image of softmax before ``CrossEntropyLoss``):
``NLLLoss`` only picks ``-input[target]``; it expects log-probabilities from ``log_softmax``. On raw
linear outputs the loss is minus the target's score, unbounded below: it "improves" without limit
by inflating that score, and the other classes are never pushed down. Expected: ``loss-setup``
fails (log-probabilities missing before NLLLoss).

Data: scikit-learn's ``load_digits`` (8x8 digits, pixels / 16).
"""

import torch.nn as nn

from _digits_base import digits, shuffled_loader


def build_model():
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))  # BUG: no LogSoftmax


def dataloader():
    return shuffled_loader(*digits())


loss_fn = nn.NLLLoss()
