"""Broken digits classifier: every parameter frozen, the new head included.

The bug (bug-catalogue.md, PyTorch mistakes: "everything frozen"): fine-tuning code meant to
freeze the feature extractor loops over ``model.parameters()`` instead of
``model.features.parameters()``, so the classifier head is frozen too and nothing can train.
Expected: the ``params`` probe fails ("Every parameter is frozen") and the ``updates`` probe fails
("no trainable parameter").
"""

import torch
import torch.nn as nn
from sklearn.datasets import load_digits


def dataloader():
    """sklearn's 8x8 digits (1,797 images, 64 pixels scaled to [0, 1]), shuffled, batches of 64."""
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    return [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(y), 64)]


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


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
