"""Broken row-by-row LSTM on digits: ``view`` used where ``permute`` was meant.

The bug (bug-catalogue.md, PyTorch mistakes: "``view`` used where ``permute``/``transpose`` was
meant (batch and time mixed in an LSTM)"): the images come batch-first, ``(N, T=8, F=8)``, and
``nn.LSTM`` is sequence-first by default, so the author reshapes with ``x.view(T, N, F)``. A view
only regroups memory: step t of "sample" n is now some row of some other image, and each
prediction depends on several images of the batch. The shapes are right, so nothing raises.
Expected: the ``batch-independence`` probe fails at the ``Tensor.view`` in the model's forward.
"""

import torch.nn as nn
from _digits_base import dataloader, loss_fn, build_optimizer  # noqa: F401 - contract names


class RowLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 32)  # sequence-first: expects (T, N, F)
        self.fc = nn.Linear(32, 10)

    def forward(self, x):
        x = x.reshape(x.size(0), 8, 8)  # (N, 64) -> (N, T, F): each image as 8 rows of 8 pixels
        x = x.view(x.size(1), x.size(0), x.size(2))  # BUG: meant x.permute(1, 0, 2)
        out, _ = self.lstm(x)
        return self.fc(out[-1])


def build_model():
    return RowLSTM()


