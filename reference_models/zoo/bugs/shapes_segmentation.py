"""Tiny fully convolutional segmenter on synthetic 16x16 images (background / square / disc per pixel),
log-softmax output with NLLLoss, Adam."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data

SIZE = 16


def _load(n=256):
    g = torch.Generator().manual_seed(5)
    yy, xx = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    images = torch.zeros(n, 1, SIZE, SIZE)
    masks = torch.zeros(n, SIZE, SIZE, dtype=torch.long)
    for i in range(n):
        cy, cx = torch.randint(4, SIZE - 4, (2,), generator=g).tolist()
        r = int(torch.randint(2, 4, (1,), generator=g))
        if i % 2:
            shape = ((yy - cy).abs() <= r) & ((xx - cx).abs() <= r)
        else:
            shape = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        images[i, 0][shape] = 1.0
        masks[i][shape] = 1 + i % 2
    images = images + 0.1 * torch.randn(images.shape, generator=g)
    return images, masks


class Segmenter(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1)
        self.classify = nn.Conv2d(16, 3, 1)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        return F.log_softmax(self.classify(x), dim=-1)


def build_model():
    return Segmenter()


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 16)


loss_fn = nn.NLLLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)
