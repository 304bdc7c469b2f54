"""A float64 MLP regression (scientific-computing style: ``torch.set_default_dtype`` avoided, the
model and data cast with ``.double()``) fitting a damped oscillator x(t) = exp(-0.3 t) cos(t).

1 -> 64 tanh -> 64 tanh -> 1, MSELoss, Adam lr 3e-3; everything in float64, as PINN and
physics codes often do for precision.
"""

import torch
import torch.nn as nn


def build_model():
    return nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)).double()


_t = torch.linspace(0, 6, 256, dtype=torch.float64).unsqueeze(1)
_x = torch.exp(-0.3 * _t) * torch.cos(_t)
_order = torch.randperm(256, generator=torch.Generator().manual_seed(0))
train_loader = [(_t[_order[i:i + 32]] / 6.0, _x[_order[i:i + 32]]) for i in range(0, 256, 32)]

loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)

