"""Fully convolutional classifier on the 8x8 digits: conv blocks, class maps averaged over space, SGD."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 32, 3, padding=1, stride=2)
        self.head = nn.Conv2d(32, 10, 3, padding=1)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.relu(self.head(x))
        return x.mean(dim=(2, 3))


def build_model():
    return Net()


def dataloader():
    x, y = _data.digits_images()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)
