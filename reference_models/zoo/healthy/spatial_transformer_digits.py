"""Spatial transformer network on 8x8 digits, as in the PyTorch STN tutorial.

A localisation net regresses a 2x3 affine matrix whose last layer starts at the identity
transform (weight zeroed, bias = [1, 0, 0, 0, 1, 0]), ``F.affine_grid`` + ``F.grid_sample`` warp
the input, then a small CNN classifies; log_softmax + nll_loss and SGD lr 0.01 as in the
tutorial (momentum 0.9 added to learn within a few hundred steps).
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)
        self.localization = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(True),
            nn.Conv2d(8, 10, 3, padding=1), nn.MaxPool2d(2), nn.ReLU(True),
        )
        self.fc_loc = nn.Sequential(nn.Linear(10 * 2 * 2, 32), nn.ReLU(True), nn.Linear(32, 3 * 2))
        self.fc_loc[2].weight.data.zero_()
        self.fc_loc[2].bias.data.copy_(torch.tensor([1, 0, 0, 0, 1, 0], dtype=torch.float))

    def stn(self, x):
        xs = self.localization(x).view(-1, 10 * 2 * 2)
        theta = self.fc_loc(xs).view(-1, 2, 3)
        grid = F.affine_grid(theta, x.size(), align_corners=False)
        return F.grid_sample(x, grid, align_corners=False)

    def forward(self, x):
        x = self.stn(x)
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = x.view(-1, 32 * 2 * 2)
        x = F.dropout(F.relu(self.fc1(x)), training=self.training)
        return F.log_softmax(self.fc2(x), dim=1)


def build_model():
    return Net()


_x, _y = _data.digits_images(normalize=True)
train_loader = _data.loader(_x, _y, batch_size=32)


def loss_fn(output, target):
    return F.nll_loss(output, target)


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)
