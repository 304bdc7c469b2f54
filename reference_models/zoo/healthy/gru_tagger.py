"""Bidirectional GRU token tagger (one tag per token), logits ``(batch, tags, seq)``.

Embedding -> 1-layer bidirectional GRU -> Linear per token, permuted to put the class dim second
for CrossEntropyLoss, the usual NER/POS tagging layout. Adam lr 3e-3.
"""

import torch
import torch.nn as nn

from reference_models.zoo import _data

VOCAB, TAGS = 40, 4


class GRUTagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 24)
        self.gru = nn.GRU(24, 32, batch_first=True, bidirectional=True)
        self.fc = nn.Linear(64, TAGS)

    def forward(self, ids):
        h, _ = self.gru(self.embed(ids))
        return self.fc(h).permute(0, 2, 1)


def build_model():
    return GRUTagger()


_ids, _tags = _data.token_tagging(512, seq_len=12, vocab=VOCAB, tags=TAGS)
train_loader = _data.loader(_ids, _tags, batch_size=32)

loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)
