"""XOR network 2-2-3-1 with sigmoid hidden layers and a softmax output, MSE, SGD with Nesterov momentum.
"""

import torch
import torch.nn as nn


def build_model():
    return nn.Sequential(nn.Linear(2, 2), nn.Sigmoid(), nn.Linear(2, 3), nn.Sigmoid(), nn.Linear(3, 1),
                         nn.Softmax(dim=1))


def sample_batch():
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([[0.0], [1.0], [1.0], [0.0]])
    return x, y


loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.001, momentum=0.9, nesterov=True)
