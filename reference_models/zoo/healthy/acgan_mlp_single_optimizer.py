"""MLP AC-GAN on digits with ONE Adam over both nets, D frozen for the G step (requires_grad off).

The pix2pix/CycleGAN ``set_requires_grad(netD, False)`` pattern with one optimizer: the D step
uses a detached fake; during the G step D's parameters do not require grad, so the shared Adam
(lr 1e-3 for the small MLPs, betas (0.5, 0.999)) only moves G. D has an adversarial logit
(BCEWithLogitsLoss) and a class head (CrossEntropyLoss) as in AC-GAN; ``train_step`` returns the
D loss.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data

NZ, N_CLASSES = 16, 10


def set_requires_grad(net, requires_grad):
    for p in net.parameters():
        p.requires_grad = requires_grad


class Discriminator(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 128), nn.LeakyReLU(0.2))
        self.adv = nn.Linear(128, 1)
        self.aux = nn.Linear(128, N_CLASSES)

    def forward(self, x):
        h = self.body(x)
        return self.adv(h).view(-1), self.aux(h)


class GAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.label_emb = nn.Embedding(N_CLASSES, NZ)
        self.G = nn.Sequential(nn.Linear(NZ, 128), nn.LeakyReLU(0.2), nn.Linear(128, 64), nn.Tanh())
        self.D = Discriminator()

    def generate(self, z, labels):
        return self.G(z * self.label_emb(labels))

    def forward(self, x):
        return self.D(x)


def build_model():
    return GAN()


_x, _y = _data.digits_flat()
train_loader = _data.loader(_x * 2 - 1, _y, batch_size=32)

bce = nn.BCEWithLogitsLoss()
ce = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3, betas=(0.5, 0.999))


def train_step(model, optimizer, batch):
    real, labels = batch
    b = real.size(0)
    dev = real.device  # the labels and the noise follow the batch (CPU or GPU)
    gen_labels = torch.randint(0, N_CLASSES, (b,)).to(dev)
    fake = model.generate(torch.randn(b, NZ).to(dev), gen_labels)
    # D step
    set_requires_grad(model.D, True)
    optimizer.zero_grad()
    adv_r, aux_r = model.D(real)
    adv_f, aux_f = model.D(fake.detach())
    loss_d = 0.5 * (bce(adv_r, torch.ones(b, device=dev)) + ce(aux_r, labels)
                    + bce(adv_f, torch.zeros(b, device=dev)) + ce(aux_f, gen_labels)) / 2
    loss_d.backward()
    optimizer.step()
    # G step, D frozen
    set_requires_grad(model.D, False)
    optimizer.zero_grad()
    adv_g, aux_g = model.D(fake)
    loss_g = 0.5 * (bce(adv_g, torch.ones(b, device=dev)) + ce(aux_g, gen_labels))
    loss_g.backward()
    optimizer.step()
    set_requires_grad(model.D, True)
    return loss_d.item()
