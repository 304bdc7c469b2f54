"""MLP classifier trained under ``torch.autocast("cpu", dtype=torch.bfloat16)`` in training_step.

The PyTorch AMP recipe for CPU: the forward pass and loss run in autocast (matmuls in bfloat16),
parameters and optimizer stay float32, no GradScaler (bfloat16 has float32's range). Digits,
64 -> 128 -> 10, Adam lr 1e-3.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))


_x, _y = _data.digits_flat()
train_loader = _data.loader(_x, _y, batch_size=64)

criterion = nn.CrossEntropyLoss()


def training_step(model, batch):
    x, y = batch
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        loss = criterion(logits, y)
    return loss.float()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
