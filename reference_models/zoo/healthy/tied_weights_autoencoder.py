"""Tied-weight autoencoder: the decoder uses the encoder's weight transposed (``F.linear(h, W.t())``).

The classic tied autoencoder (as in denoising-autoencoder papers and many PyTorch tutorials): one
weight matrix shared by encoder and decoder, separate biases, sigmoid code and output; digits in
[0, 1] with 20% masking noise on the input; MSELoss against the clean image; Adam lr 3e-3.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data


class TiedAutoencoder(nn.Module):
    def __init__(self, d=64, h=32):
        super().__init__()
        self.encoder = nn.Linear(d, h)
        self.decoder_bias = nn.Parameter(torch.zeros(d))

    def forward(self, x):
        code = torch.sigmoid(self.encoder(x))
        return torch.sigmoid(F.linear(code, self.encoder.weight.t(), self.decoder_bias))


def build_model():
    return TiedAutoencoder()


_x, _ = _data.digits_flat()
_noisy = _x * (torch.rand(_x.shape, generator=torch.Generator().manual_seed(1)) > 0.2)
train_loader = _data.loader(_noisy, _x, batch_size=32)

loss_fn = nn.MSELoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)
