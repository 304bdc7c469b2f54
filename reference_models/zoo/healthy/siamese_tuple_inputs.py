"""Siamese network on digit pairs: inputs are a tuple ``(x1, x2)``, target 1 when same class.

One shared encoder embeds both images; the head scores ``|e1 - e2|`` with a logit and
BCEWithLogitsLoss (the "Siamese networks for one-shot recognition" pattern, Koch et al.); pairs
are balanced between same and different classes. Adam lr 1e-3.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


class Siamese(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
        self.head = nn.Linear(32, 1)

    def forward(self, x1, x2):
        return self.head(torch.abs(self.encoder(x1) - self.encoder(x2))).squeeze(1)


def build_model():
    return Siamese()


def _pairs(n=1024, seed=0):
    x, y = _data.digits_flat()
    g = torch.Generator().manual_seed(seed)
    a = torch.randint(0, len(y), (n,), generator=g)
    same = torch.arange(n) % 2 == 0
    b = torch.randint(0, len(y), (n,), generator=g)
    for i in torch.nonzero(same).flatten().tolist():
        pool = torch.nonzero(y == y[a[i]]).flatten()
        b[i] = pool[torch.randint(0, len(pool), (1,), generator=g)]
    return (x[a], x[b]), (y[a] == y[b]).float()


_inputs, _targets = _pairs()
train_loader = _data.batches(_inputs, _targets, batch_size=32)

loss_fn = nn.BCEWithLogitsLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
