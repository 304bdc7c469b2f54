"""Small CNN on the 8x8 digits (conv16-pool-conv32-pool-fc64-fc10), SGD with momentum, batches of 32."""

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

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def build_model():
    return Net()


def dataloader():
    x, y = _data.digits_images()
    return _data.batches(x, y, 32, limit=1024)


def loss_fn(output, target):
    return F.cross_entropy(output, target, reduction="sum")


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)
