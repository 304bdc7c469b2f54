"""Convolutional autoencoder on 8x8 digits, MSE reconstruction, Adam (common AE tutorial pattern).

Conv(stride 2) encoder to a 2x2x16 code, ConvTranspose decoder with a sigmoid output for pixels in
[0, 1]; the targets are the inputs themselves (``(x, x)`` batches), MSELoss, Adam lr 1e-3.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data


class ConvAutoencoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(1, 16, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(16, 16, 2, stride=2), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 2, stride=2), nn.Sigmoid(),
        )

    def forward(self, x):
        return self.decoder(self.encoder(x))


def build_model():
    return ConvAutoencoder()


_x, _ = _data.digits_images()
train_loader = _data.loader(_x, _x, batch_size=32)

loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
