"""Variational autoencoder on the digits, as in pytorch/examples vae (main.py).

fc1 -> (fc21, fc22) for mu and logvar, reparameterisation, fc3 -> fc4 -> sigmoid; the loss is
the example's ``loss_function``: binary cross-entropy summed over pixels and batch plus the KL
divergence, returned by ``training_step``. Adam lr 1e-3; pixels in [0, 1].
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data


class VAE(nn.Module):
    def __init__(self, d=64, hidden=128, z=8):
        super().__init__()
        self.fc1 = nn.Linear(d, hidden)
        self.fc21 = nn.Linear(hidden, z)
        self.fc22 = nn.Linear(hidden, z)
        self.fc3 = nn.Linear(z, hidden)
        self.fc4 = nn.Linear(hidden, d)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, 64))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def build_model():
    return VAE()


def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 64), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


_x, _y = _data.digits_flat()
train_loader = _data.loader(_x, _y, batch_size=64)


def training_step(model, batch):
    data, _ = batch
    recon, mu, logvar = model(data)
    return loss_function(recon, data, mu, logvar)


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
