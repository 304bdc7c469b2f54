"""Small real training runs with injected faults, shared by the watch tests (digits: 1797 8x8 images)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

_DIGITS = None


def digits():
    """(x, y) of scikit-learn's digits, standardised, as tensors (cached)."""
    global _DIGITS
    if _DIGITS is None:
        from sklearn.datasets import load_digits

        d = load_digits()
        x = torch.tensor(d.data, dtype=torch.float32)
        x = (x - x.mean(0)) / (x.std(0) + 1e-6)
        _DIGITS = (x, torch.tensor(d.target))
    return _DIGITS


def batches(seed: int, batch_size: int = 64):
    """An endless seeded stream of digits batches."""
    x, y = digits()
    g = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x) - batch_size + 1, batch_size):
            idx = perm[i:i + batch_size]
            yield x[idx], y[idx]


class Faulty(nn.Module):
    """Identity until armed; armed, it turns finite inputs into NaN (log of a negative number)."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("armed", torch.zeros(()))

    def forward(self, x):
        if bool(self.armed > 0):
            return torch.log(-x.abs() - 1.0)  # NaN everywhere, from finite x
        return x


class _ScaleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gain):
        ctx.gain = float(gain)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.gain, None


class Fader(nn.Module):
    """Identity forward; multiplies the gradient flowing back through it by ``self.gain``."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = 1.0

    def forward(self, x):
        return _ScaleGrad.apply(x, self.gain)


class MLP(nn.Module):
    """64-64-32-10 with nn.ReLU modules, a Faulty after fc2 and a Fader after the first ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(64, 64)
        self.act1 = nn.ReLU()
        self.fade = Fader()
        self.fc2 = nn.Linear(64, 32)
        self.faulty = Faulty()
        self.act2 = nn.ReLU()
        self.fc3 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.fade(self.act1(self.fc1(x)))
        return self.fc3(self.act2(self.faulty(self.fc2(x))))


def train(model, optimizer, steps: int, seed: int, w=None, before_step=None, scaler=None):
    """A plain loop; ``before_step(step, model, optimizer)`` injects the fault. Returns losses."""
    losses = []
    data = batches(seed)
    for step in range(steps):
        if before_step is not None:
            before_step(step, model, optimizer)
        x, y = next(data)
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if w is not None:
            w.step(loss)
        losses.append(float(loss.detach()))
    return losses


def make(seed: int, lr: float = 1e-3, opt: str = "adam"):
    """A seeded MLP and its optimizer."""
    torch.manual_seed(seed)
    model = MLP()
    if opt == "sgd":
        return model, torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    return model, torch.optim.Adam(model.parameters(), lr=lr)


class _NanBackward(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * float("nan")


class BadBackward(nn.Module):
    """Identity forward whose backward turns the (finite) gradient into NaN once armed."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("armed", torch.zeros(()))

    def forward(self, x):
        return _NanBackward.apply(x) if bool(self.armed > 0) else x
