"""Linear regression on unscaled polynomial features [t, t^2, t^3] (t in [0, 3]).

The "polynomial regression in PyTorch" pattern: features as sklearn's PolynomialFeatures gives
them (up to 27, not rescaled), a single nn.Linear, MSELoss, Adam lr 1e-2.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Linear(3, 1)


_x, _y = _data.poly_regression(512, degree=3)
train_loader = _data.loader(_x, _y, batch_size=64)

criterion = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-2)
