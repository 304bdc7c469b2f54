"""AC-GAN with DCGAN-style conv nets on 8x8 digits, two Adam optimizers inside ``train_step``.

The eriklindernoren/PyTorch-GAN acgan.py loop: G gets noise times a label embedding; D has an
adversarial head (sigmoid, BCELoss) and an auxiliary class head (logits, CrossEntropyLoss); D is
updated on real and detached fake images, then G to fool D and match the sampled labels. Adam
lr 2e-4, betas (0.5, 0.999), normal(0, 0.02) init as in pytorch/examples dcgan. The module holds
both nets; the two optimizers are created per model on its first step; ``train_step`` returns the
discriminator loss, as the script prints it.
"""

import weakref

import torch
import torch.nn as nn

from reference_models.zoo import _data

NZ, N_CLASSES = 16, 10


def weights_init_normal(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Generator(nn.Module):
    def __init__(self, ngf=32):
        super().__init__()
        self.label_emb = nn.Embedding(N_CLASSES, NZ)
        self.main = nn.Sequential(
            nn.ConvTranspose2d(NZ, ngf * 2, 2, 1, 0, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, 1, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, noise, labels):
        z = noise * self.label_emb(labels)
        return self.main(z.view(-1, NZ, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, ndf=32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, ndf, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Flatten(),
        )
        self.adv_layer = nn.Sequential(nn.Linear(ndf * 2 * 4, 1), nn.Sigmoid())
        self.aux_layer = nn.Linear(ndf * 2 * 4, N_CLASSES)

    def forward(self, img):
        h = self.features(img)
        return self.adv_layer(h).view(-1), self.aux_layer(h)


class ACGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.generator = Generator()
        self.discriminator = Discriminator()
        self.apply(weights_init_normal)

    def forward(self, img):
        return self.discriminator(img)


def build_model():
    return ACGAN()


_x, _y = _data.digits_images()
train_loader = _data.loader(_x * 2 - 1, _y, batch_size=32)

adversarial_loss = nn.BCELoss()
auxiliary_loss = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))


_optimizers = weakref.WeakKeyDictionary()


def _get_optimizers(model):
    if model not in _optimizers:
        _optimizers[model] = (
            torch.optim.Adam(model.generator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
            torch.optim.Adam(model.discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
        )
    return _optimizers[model]


def train_step(model, optimizer, batch):
    optimizer_G, optimizer_D = _get_optimizers(model)
    imgs, labels = batch
    b = imgs.size(0)
    dev = imgs.device  # the labels and the noise follow the batch (CPU or GPU)
    valid, fake = torch.ones(b, device=dev), torch.zeros(b, device=dev)
    # Train generator
    optimizer_G.zero_grad()
    z = torch.randn(b, NZ).to(dev)
    gen_labels = torch.randint(0, N_CLASSES, (b,)).to(dev)
    gen_imgs = model.generator(z, gen_labels)
    validity, pred_label = model.discriminator(gen_imgs)
    g_loss = 0.5 * (adversarial_loss(validity, valid) + auxiliary_loss(pred_label, gen_labels))
    g_loss.backward()
    optimizer_G.step()
    # Train discriminator
    optimizer_D.zero_grad()
    real_pred, real_aux = model.discriminator(imgs)
    d_real_loss = (adversarial_loss(real_pred, valid) + auxiliary_loss(real_aux, labels)) / 2
    fake_pred, fake_aux = model.discriminator(gen_imgs.detach())
    d_fake_loss = (adversarial_loss(fake_pred, fake) + auxiliary_loss(fake_aux, gen_labels)) / 2
    d_loss = (d_real_loss + d_fake_loss) / 2
    d_loss.backward()
    optimizer_D.step()
    return d_loss.item()
