"""Reference CNN: conv32-pool-conv64-pool-fc128-fc10, as in the tutorials' SimpleCNN (for 1x28x28 input).

A plain nndiag model file: ``build_model()``, ``dataloader()``, ``loss_fn``, ``build_optimizer``.
Data: MNIST by default; set ``NNDIAG_DATASET=fashion-mnist`` (or pass ``dataset=``) for Fashion-MNIST.
Where the files are looked for, the splits and the normalisation: ``reference_models/data.py``.

Works both as ``reference_models.cnn`` and loaded by path (``nndiag check reference_models/cnn.py``):
``reference_models`` is imported from the installed project, or else from this file's parent folder.
"""

import os
import sys
from pathlib import Path

import torch
import torch.nn as nn

try:
    from reference_models import data as rm_data
except ImportError:  # loaded by path and the project is not installed: use the checkout this file is in
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from reference_models import data as rm_data

TASK = "classification"
DATASETS = rm_data.DATASETS
BATCH_SIZE = 64
EPOCHS = 8
LR = 1e-3


class SimpleCNN(nn.Module):
    """Two 3x3 conv (padding 1) + ReLU + 2x2 max-pool blocks, then 64*7*7 -> 128 -> 10."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = x.view(-1, 64 * 7 * 7)
        x = torch.relu(self.fc1(x))
        return self.fc2(x)


def build_model():
    """A fresh, untrained CNN."""
    return SimpleCNN()


def default_dataset():
    """The data set to use: ``$NNDIAG_DATASET`` if set, else MNIST."""
    return os.environ.get("NNDIAG_DATASET") or "mnist"


def dataloader(batch_size=BATCH_SIZE, *, train=True, dataset=None, data_dir=None, limit=None, seed=0):
    """Seeded loader of ``(images (B, 1, 28, 28) float32, labels (B,) int64)`` batches.

    ``train=False`` gives the held-out part, in order. Data is read on the first call and cached.
    """
    ds = rm_data.image_dataset(dataset or default_dataset(), train=train, data_dir=data_dir, limit=limit)
    return rm_data.make_loader(ds, batch_size=batch_size, shuffle=train, seed=seed)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    """Adam, lr 1e-3."""
    return torch.optim.Adam(params, lr=LR)
