"""CNN on 8x8 digits with AdamW (weight decay 0.01, the PyTorch default) and no decay on biases/norms.

The usual parameter-group split (decay for conv/linear weights, none for biases and GroupNorm
parameters) done inside ``build_optimizer`` by tensor rank, as timm/HF trainers do; GroupNorm
layers, AdamW lr 1e-3.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.GroupNorm(4, 16), nn.GELU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.GroupNorm(8, 32), nn.GELU(),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )


_x, _y = _data.digits_images(normalize=True)
train_loader = _data.loader(_x, _y, batch_size=32)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    params = list(params)
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                              {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
