"""BiLSTM sequence classifier over padded batches with ``pack_padded_sequence``.

Inputs are a tuple ``(padded_ids, lengths)``; the forward packs with ``enforce_sorted=False``,
runs a 1-layer bidirectional LSTM and classifies from the concatenated last hidden states of both
directions, the standard pattern of the PyTorch forums / "packed padded sequences" tutorials.
Adam lr 3e-3, CrossEntropyLoss.
"""

import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence

from reference_models.zoo import _data

VOCAB, SEQ = 50, 20


class BiLSTMClassifier(nn.Module):
    def __init__(self, embed=32, hidden=32, classes=2):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, embed, padding_idx=0)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, ids, lengths):
        packed = pack_padded_sequence(self.embedding(ids), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.fc(torch.cat([h[-2], h[-1]], dim=1))


def build_model():
    return BiLSTMClassifier()


_ids, _y, _len = _data.token_classification(512, SEQ, VOCAB, classes=2, pad_id=0)
train_loader = _data.batches((_ids, _len), _y, batch_size=32)

criterion = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)
