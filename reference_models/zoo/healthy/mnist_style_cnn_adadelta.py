"""Small CNN on the 8x8 digits with Adadelta, following pytorch/examples mnist (main.py).

The example's Net (conv-conv-maxpool-dropout-fc-dropout-fc, log_softmax output, F.nll_loss,
Adadelta lr=1.0) with widths and kernel sizes scaled to 8x8 images.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1)
        self.conv2 = nn.Conv2d(16, 32, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(32 * 2 * 2, 64)
        self.fc2 = nn.Linear(64, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = self.dropout1(x)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = self.dropout2(x)
        return F.log_softmax(self.fc2(x), dim=1)


def build_model():
    return Net()


_x, _y = _data.digits_images(normalize=True)
train_loader = _data.loader(_x, _y, batch_size=32)


def loss_fn(output, target):
    return F.nll_loss(output, target)


def build_optimizer(params):
    return torch.optim.Adadelta(params, lr=1.0)
