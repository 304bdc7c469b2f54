"""Reference sequence classifier: an LSTM reading an MNIST image row by row (28 steps of 28 pixels).

``nn.LSTM(28, 128, batch_first=True)`` and a ``Linear(128, 10)`` on the last step, ``CrossEntropyLoss``,
Adam lr 1e-3. Takes the same ``(B, 1, 28, 28)`` image batches as ``mlp.py`` and ``cnn.py`` and views
each image as a sequence of its rows. Data: MNIST by default; ``NNDIAG_DATASET=fashion-mnist`` (or
``dataset=``) for Fashion-MNIST. Where the files are looked for: ``reference_models/data.py``.

Works both as ``reference_models.seq_classifier`` and loaded by path: ``reference_models`` is imported
from the installed project, or else from this file's parent folder.
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
EPOCHS = 20
LR = 1e-3
HIDDEN = 128


class RowLSTM(nn.Module):
    """Reads the 28 rows of a 28x28 image as a sequence; classifies from the last step's output."""

    def __init__(self, hidden_size=HIDDEN, num_classes=10):
        super().__init__()
        self.lstm = nn.LSTM(28, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, x):
        x = x.reshape(x.size(0), 28, 28)  # (B, 1, 28, 28) -> (B, rows, pixels per row)
        out, _ = self.lstm(x)
        return self.fc(out[:, -1, :])


def build_model():
    """A fresh, untrained row-by-row LSTM classifier."""
    return RowLSTM()


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
