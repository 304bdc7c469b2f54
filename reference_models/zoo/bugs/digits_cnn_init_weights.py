"""Small CNN on the 8x8 digits (conv16-conv32-pool-fc) with its own weight initialisation, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Linear(32 * 4 * 4, 10)
        for m in self.features:
            if isinstance(m, nn.Conv2d):
                nn.init.constant_(m.weight, 0.1)
                nn.init.constant_(m.bias, 0.0)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def build_model():
    return Net()


def dataloader():
    x, y = _data.digits_images()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
