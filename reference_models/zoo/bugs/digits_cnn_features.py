"""CNN on the 8x8 digits (conv16-conv32-pool, fc), with a feature-norm statistic kept for logging, Adam."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Linear(32 * 4 * 4, 10)
        self.last_feature_norm = 0.0

    def forward(self, x):
        feats = self.features(x).flatten(1)
        feats = feats.detach()
        self.last_feature_norm = feats.norm(dim=1).mean().item()
        return self.fc(feats)


def build_model():
    return Net()


def dataloader():
    x, y = _data.digits_images()
    return _data.batches(x, y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
