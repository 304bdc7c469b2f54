"""MLP classifier on the 8x8 digits with hidden activations clipped to [0, 6] (ReLU6-style), Adam."""

import numpy as np
import torch
import torch.nn as nn

from reference_models.zoo import _data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.fc2 = nn.Linear(64, 64)
        self.fc3 = nn.Linear(64, 10)

    def forward(self, x):
        h = self.fc1(x)
        h = torch.from_numpy(np.clip(h.detach().numpy(), 0.0, 6.0))
        h = torch.relu(self.fc2(h))
        return self.fc3(h)


def build_model():
    return Net()


def dataloader():
    x, y = _data.digits_flat()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
