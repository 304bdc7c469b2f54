"""Broken MLP: a layer whose output is ``.detach()``ed, cutting ``fc1`` off the loss.

The bug (bug-catalogue.md, PyTorch mistakes: "a .detach() that cuts a layer off the loss"): the
forward pass runs and the loss goes down (the later layers still learn), but ``fc1`` never gets a
gradient and stays at its random initialisation. Expected: the ``gradients`` probe fails naming
``fc1.weight`` and ``fc1.bias``.
"""

import torch

from _mlp_base import SimpleANN, build_optimizer, dataloader, loss_fn  # noqa: F401 - contract names


class DetachedMLP(SimpleANN):
    def forward(self, x):
        x = x.view(-1, 28 * 28)
        x = torch.relu(self.fc1(x)).detach()  # BUG: no gradient reaches fc1
        x = torch.relu(self.fc2(x))
        return self.fc3(x)


def build_model():
    return DetachedMLP()
