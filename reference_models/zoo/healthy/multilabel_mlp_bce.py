"""Multi-label MLP: one logit per label, BCEWithLogitsLoss against 0/1 float targets.

sklearn's make_multilabel_classification data (standardised), 20 features, 5 labels, an MLP with
a ReLU hidden layer and no output activation, the standard multi-label setup (the sigmoid lives
inside BCEWithLogitsLoss). Adam lr 1e-3.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 5))


_x, _y = _data.multilabel(512, features=20, labels=5)
train_loader = _data.loader(_x, _y, batch_size=32)

loss_fn = nn.BCEWithLogitsLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
