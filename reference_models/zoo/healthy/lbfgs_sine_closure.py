"""Full-batch sine-curve fit with LBFGS and a closure, as pytorch/examples time_sequence_prediction.

A 1-32-32-1 tanh MLP fits noisy ``sin(x)``; ``train_step`` passes a closure (zero_grad, forward,
MSE, backward) to ``optimizer.step``, the way torch.optim.LBFGS must be driven (lr 0.8 as in the
example, strong-Wolfe line search off).
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


def build_model():
    return nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))


def sample_batch():
    return _data.sine(256)


criterion = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.LBFGS(params, lr=0.8)


def train_step(model, optimizer, batch):
    x, y = batch

    def closure():
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    return loss.item()
