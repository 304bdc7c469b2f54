"""Row-by-row LSTM classifier on the 8x8 digits (each image is a sequence of 8 rows of 8 pixels), Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data


class RowLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(8, 64)
        self.fc = nn.Linear(64, 10)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, -1])


def build_model():
    return RowLSTM()


def dataloader():
    x, y = _data.digits_flat()
    return _data.batches(x.view(-1, 8, 8), y, 32, limit=1024)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)
