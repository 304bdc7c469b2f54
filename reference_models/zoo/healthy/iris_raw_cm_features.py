"""3-class classifier on the iris measurements in raw centimetres (0.1 to 7.9, not standardised).

The classic first PyTorch classifier: 4 -> 16 ReLU -> 3 on sklearn's iris, features left in
their natural, reasonable units, full-batch Adam lr 1e-2 with CrossEntropyLoss.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))


_x, _y = _data.iris(standardize=False)


def sample_batch():
    return _x, _y


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-2)
