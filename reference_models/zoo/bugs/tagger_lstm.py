"""LSTM sequence tagger: one of 12 tags per token for sequences of 12 tokens, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data

SEQ_LEN, VOCAB, TAGS = 12, 40, 12


def _load():
    g = torch.Generator().manual_seed(11)
    tokens = torch.randint(0, VOCAB, (512, SEQ_LEN), generator=g)
    tags = tokens % TAGS
    return tokens, tags


class Tagger(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.lstm = nn.LSTM(32, 64, batch_first=True)
        self.out = nn.Linear(64, TAGS)

    def forward(self, tokens):
        h, _ = self.lstm(self.embed(tokens))
        return self.out(h)


def build_model():
    return Tagger()


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3)
