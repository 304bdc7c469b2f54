"""Binary classifier on two Gaussian blobs (8 features) with one output unit, log-softmax output, binary cross-entropy on its probability, Adam."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 32)
        self.fc2 = nn.Linear(32, 1)

    def forward(self, x):
        return F.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=1)


def build_model():
    return Net()


def dataloader():
    x, y = _data.blobs(n=512, centers=2, features=8, seed=1)
    return _data.batches(x, y, 32)


def loss_fn(log_probs, target):
    return F.binary_cross_entropy(log_probs.exp().squeeze(1), target.float())


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
