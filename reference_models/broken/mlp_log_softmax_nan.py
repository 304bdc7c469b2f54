"""Broken MLP: a hand-written ``log(softmax(x))`` that goes to NaN/Inf.

The bug (bug-catalogue.md, PyTorch mistakes: "NaN from log(softmax(x)) written by hand"): taking
the log of a softmax separately underflows: a probability that rounds to 0 gives log(0) = -inf,
and the loss becomes inf/NaN. ``F.log_softmax`` computes the same thing stably. The logits are
scaled up (a "temperature" of 1/1000, as in a sharpened classifier) so the underflow happens at the
first step instead of after weeks of training. Expected: the ``nan`` probe fails and names
``torch.log`` in the model's forward.
"""

import torch
import torch.nn as nn

from _mlp_base import SimpleANN, build_optimizer, dataloader  # noqa: F401 - contract names


class LogSoftmaxByHand(SimpleANN):
    def forward(self, x):
        logits = super().forward(x) * 1000.0  # a sharp temperature (1/1000)
        return torch.log(torch.softmax(logits, dim=1))  # BUG: use F.log_softmax


def build_model():
    return LogSoftmaxByHand()


loss_fn = nn.NLLLoss()  # correct for log-probabilities
