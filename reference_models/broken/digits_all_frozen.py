"""Broken digits classifier: every parameter frozen, the new head included.

The bug (bug-catalogue.md, PyTorch mistakes: "everything frozen"): fine-tuning code meant to
freeze the feature extractor loops over ``model.parameters()`` instead of
``model.features.parameters()``, so the classifier head is frozen too and nothing can train.
Expected: the ``params`` probe fails ("Every parameter is frozen") and the ``updates`` probe fails
("no trainable parameter").
"""

import torch.nn as nn
from _digits_base import dataloader, loss_fn, build_optimizer  # noqa: F401 - contract names


class DigitsClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(64, 32), nn.ReLU())
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.features(x))


def build_model():
    model = DigitsClassifier()
    for p in model.parameters():  # BUG: meant model.features.parameters()
        p.requires_grad = False
    return model


