"""Classify-and-localise: a digit pasted at a random place on a 16x16 canvas; predict its class and
its centre with two heads whose biases start at zero (``nn.init.constant_(bias, 0)``).

The detection-head convention of torchvision's RetinaNet/FCOS heads (normal(0, 0.01) weights,
zero bias for the box regressor); the loss is cross-entropy plus smooth-L1 on the centre
(normalised to [-1, 1]), computed in ``training_step`` from a ``(logits, box)`` output. Adam 3e-3.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from reference_models.zoo import _data

CANVAS = 16


class ClassifyLocalise(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(32 * 4 * 4, 64), nn.ReLU(),
        )
        self.cls_head = nn.Linear(64, 10)
        self.box_head = nn.Linear(64, 2)
        for head in (self.cls_head, self.box_head):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.constant_(head.bias, 0)

    def forward(self, x):
        h = self.backbone(x)
        return self.cls_head(h), self.box_head(h)


def build_model():
    return ClassifyLocalise()


def _paste(images, seed=0):
    g = torch.Generator().manual_seed(seed)
    n = images.shape[0]
    canvas = torch.zeros(n, 1, CANVAS, CANVAS)
    pos = torch.randint(0, CANVAS - 8 + 1, (n, 2), generator=g)
    for i in range(n):
        r, c = pos[i].tolist()
        canvas[i, :, r:r + 8, c:c + 8] = images[i]
    centre = (pos.float() + 4) / CANVAS * 2 - 1
    return canvas, centre


_img, _labels = _data.digits_images()
_canvas, _centre = _paste(_img[:768])
train_loader = _data.batches(_canvas, {"label": _labels[:768], "centre": _centre}, batch_size=32)


def training_step(model, batch):
    x, targets = batch
    logits, box = model(x)
    return F.cross_entropy(logits, targets["label"]) + F.smooth_l1_loss(box, targets["centre"])


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)
