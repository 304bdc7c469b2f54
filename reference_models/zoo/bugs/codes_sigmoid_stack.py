"""8-8-8-8 sigmoid network mapping 8-bit codes to a fixed permutation of them, N(0, 1) init, MSE, SGD,
batches of 50.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def _load():
    codes = torch.tensor([[(i >> b) & 1 for b in range(8)] for i in range(256)], dtype=torch.float32)
    perm = torch.randperm(256, generator=torch.Generator().manual_seed(39217567))
    return codes, codes[perm]


def build_model():
    model = nn.Sequential(nn.Linear(8, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Sigmoid(),
                          nn.Linear(8, 8), nn.Sigmoid())
    for m in model:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight)
            nn.init.normal_(m.bias)
    return model


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 50)


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.01)
