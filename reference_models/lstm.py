"""Reference LSTM: next-value regression on a sine wave, as in the tutorials' SimpleLSTM.

``nn.LSTM(1, 32, batch_first=True)`` reads ``SEQ_LEN`` consecutive samples of ``sin(t)`` (spacing
``STEP``, random phase) and a ``Linear(32, 1)`` on the last step predicts the next sample; ``MSELoss``,
Adam lr 0.01 (the tutorial's). The data is generated from fixed seeds: no files needed.

A plain nndiag model file: ``build_model()``, ``dataloader()``, ``loss_fn``, ``build_optimizer``.
"""

import math

import torch
import torch.nn as nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

TASK = "regression"
DATASETS = ("sine",)
BATCH_SIZE = 64
EPOCHS = 20
LR = 0.01
HIDDEN = 32
SEQ_LEN = 30
STEP = 0.1
TRAIN_SIZE = 2048
TEST_SIZE = 512
TRAIN_DATA_SEED = 1234  # the training and test windows come from different generators: disjoint phases
TEST_DATA_SEED = 5678


class SimpleLSTM(nn.Module):
    """LSTM over the sequence, then a linear layer on the last time step's output."""

    def __init__(self, input_size=1, hidden_size=HIDDEN, output_size=1):
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)
        self.fc = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        out, _ = self.lstm(x)  # zero initial hidden and cell states
        return self.fc(out[:, -1, :])


def build_model():
    """A fresh, untrained LSTM regressor."""
    return SimpleLSTM()


def sine_windows(n, seed):
    """``n`` windows ``(inputs (n, SEQ_LEN, 1), targets (n, 1))`` of ``sin``, phases drawn from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    phase = torch.rand(n, 1, generator=generator) * 2 * math.pi
    t = phase + STEP * torch.arange(SEQ_LEN + 1, dtype=torch.float32)
    wave = torch.sin(t)
    return wave[:, :SEQ_LEN].unsqueeze(-1).contiguous(), wave[:, SEQ_LEN:].contiguous()


def dataloader(batch_size=BATCH_SIZE, *, train=True, dataset=None, data_dir=None, limit=None, seed=0):
    """Seeded loader of ``(inputs (B, SEQ_LEN, 1), targets (B, 1))`` float32 batches.

    ``train=False`` gives the held-out windows, in order. ``dataset``/``data_dir`` are accepted for a
    uniform signature and not needed.
    """
    n = TRAIN_SIZE if train else TEST_SIZE
    inputs, targets = sine_windows(n, TRAIN_DATA_SEED if train else TEST_DATA_SEED)
    if limit is not None:
        inputs, targets = inputs[:limit], targets[:limit]
    ds = TensorDataset(inputs, targets)
    ds.name, ds.split, ds.part = "sine", f"sine-{TRAIN_SIZE}/{TEST_SIZE}-windows", "train" if train else "test"
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(seed)) if train else SequentialSampler(ds)
    return DataLoader(ds, sampler=BatchSampler(sampler, batch_size, drop_last=False), batch_size=None)


loss_fn = nn.MSELoss()


def build_optimizer(params):
    """Adam, lr 0.01 (as in the tutorial)."""
    return torch.optim.Adam(params, lr=LR)
