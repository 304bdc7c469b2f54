"""Two-input model called with a dict: ``model(image=..., meta=...)``, late fusion of a CNN and an MLP.

Multimodal tabular+image pattern (e.g. Kaggle image+metadata notebooks): batches are
``({"image": (B, 1, 8, 8), "meta": (B, 4)}, labels)`` and the model's forward takes keyword
arguments; the metadata are standardised noisy copies of simple image statistics. Adam 1e-3.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


class FusionNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.cnn = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Flatten(), nn.Linear(16 * 4 * 4, 32), nn.ReLU())
        self.meta_mlp = nn.Sequential(nn.Linear(4, 16), nn.ReLU())
        self.head = nn.Linear(48, 10)

    def forward(self, image, meta):
        return self.head(torch.cat([self.cnn(image), self.meta_mlp(meta)], dim=1))


def build_model():
    return FusionNet()


_x, _y = _data.digits_images(normalize=True)
_flat = _x.flatten(1)
_meta = torch.stack([_flat.mean(1), _flat.std(1), _x[:, 0, :4].mean((1, 2)), _x[:, 0, 4:].mean((1, 2))], 1)
_meta = (_meta - _meta.mean(0)) / _meta.std(0)
train_loader = [({"image": xb[0], "meta": xb[1]}, yb)
                for xb, yb in _data.batches((_x, _meta), _y, batch_size=32)]

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
