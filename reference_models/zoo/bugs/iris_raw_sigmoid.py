"""4-4-3 iris classifier on the raw measurements (cm), normal init, sigmoid output, cross-entropy, Adam,
batches of 5.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 3), nn.Sigmoid())
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight)
    return model


def dataloader():
    x, y = _data.iris(standardize=False)
    return _data.batches(x, y, 5)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
