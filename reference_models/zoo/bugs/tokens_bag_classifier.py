"""Bag-of-embeddings text classifier on synthetic token sequences (sentiment from word lists), with the
embedding table set from a precomputed matrix, Adam."""

import torch
import torch.nn as nn

from reference_models.zoo import _data

VOCAB, DIM, SEQ_LEN = 200, 16, 12


def _load(n=512):
    g = torch.Generator().manual_seed(17)
    tokens = torch.randint(0, VOCAB, (n, SEQ_LEN), generator=g)
    score = ((tokens < 20).sum(1) - ((tokens >= 20) & (tokens < 40)).sum(1))
    return tokens, (score > 0).long()


class BagClassifier(nn.Module):
    def __init__(self, vectors):
        super().__init__()
        self.embed = nn.EmbeddingBag.from_pretrained(vectors, mode="mean")
        self.fc = nn.Linear(DIM, 2)

    def forward(self, tokens):
        return self.fc(self.embed(tokens))


def build_model():
    vectors = torch.randn(VOCAB, DIM)
    return BagClassifier(vectors)


def dataloader():
    x, y = _load()
    return _data.batches(x, y, 32)


loss_fn = nn.CrossEntropyLoss()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-2)
