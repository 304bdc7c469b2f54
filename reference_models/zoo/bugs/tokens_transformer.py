"""Small Transformer-encoder sequence classifier on synthetic token sequences (is token 7 present?),
mean-pooled, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data

VOCAB, SEQ_LEN = 20, 16


def _load(n=512):
    g = torch.Generator().manual_seed(13)
    tokens = torch.randint(0, VOCAB, (n, SEQ_LEN), generator=g)
    tokens[tokens == 7] = 8
    has = torch.rand(n, generator=g) < 0.5
    pos = torch.randint(0, SEQ_LEN, (n,), generator=g)
    tokens[has, pos[has]] = 7
    return tokens, has.long()


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(VOCAB, 32)
        self.pos = nn.Parameter(torch.randn(SEQ_LEN, 32) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.0)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        self.fc = nn.Linear(32, 2)

    def forward(self, tokens):
        h = self.encoder(self.embed(tokens) + self.pos)
        return self.fc(h.mean(dim=1))


def build_model():
    return Classifier()


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3)
