"""Broken digits MLP: the optimizer is given only the first layer's parameters.

The bug (bug-catalogue.md, PyTorch mistakes: "parameters missing from the optimizer"; the check
pytest-torch 1.1 added): the equivalent of ``torch.optim.Adam(model.fc1.parameters())``. The other
layers get gradients but are never updated, so they stay at their random initialisation; the loss
still falls a little, which hides the bug. Expected: the ``updates`` probe fails naming
``fc2.weight`` and ``fc2.bias`` as missing from the optimizer.
"""

import torch
from _digits_base import dataloader, DigitsMLP, build_model, loss_fn  # noqa: F401 - contract names


def build_optimizer(params):
    params = list(params)
    # BUG: only fc1.weight and fc1.bias (the first two, i.e. model.fc1.parameters()) are trained
    return torch.optim.Adam(params[:2], lr=1e-3)
