"""Broken: a ReLU on the output layer of a CNN classifier (bug-catalogue SO 47352366).

The bug (Stack Overflow 47352366, DeepLocalize benchmark, fault ACH): conv32-pool-conv64-pool-
fc1024-dropout-fc10 with ``relu`` also applied to the last layer's output, bias init 0.1, trained with
cross-entropy; reported loss NaN and accuracy 0.06 (0.98 once the output ReLU is removed). In
PyTorch terms: ``CrossEntropyLoss`` expects logits of any sign, and a ReLU clips every negative
logit to 0 with no gradient. Expected: ``loss-setup`` fails (ReLU before CrossEntropyLoss).

Data: scikit-learn's ``load_digits`` as 1x8x8 images (pixels / 16); layer sizes scaled down.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from _digits_base import digits, shuffled_loader


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc1 = nn.Linear(64 * 2 * 2, 256)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(256, 10)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.constant_(m.bias, 0.1)

    def forward(self, x):
        x = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        x = F.max_pool2d(torch.relu(self.conv2(x)), 2)
        x = self.drop(torch.relu(self.fc1(x.flatten(1))))
        return torch.relu(self.fc2(x))  # BUG: ReLU on the logits


def build_model():
    return CNN()


def dataloader():
    return shuffled_loader(*digits(images=True))


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
