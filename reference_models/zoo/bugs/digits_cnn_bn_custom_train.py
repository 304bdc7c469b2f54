"""CNN with BatchNorm on raw 8x8 digit pixels (0-16), with a train() override taken from a detection
codebase, SGD with momentum."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(32 * 4 * 4, 10)

    def train(self, mode=True):
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        return self

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def build_model():
    return Net()


def dataloader():
    x, y = _data.digits_images(scale=1.0)
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01, momentum=0.9)
