"""params: the frozen-weights fact (are frozen weights random draws, never loaded?)."""

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.report import Status

SEEDS = [0, 1, 2]
VOCAB, DIM = 50, 8


class Bag(nn.Module):
    def __init__(self, vectors):
        super().__init__()
        self.embed = nn.EmbeddingBag.from_pretrained(vectors, mode="mean")  # freeze=True
        self.fc = nn.Linear(DIM, 2)

    def forward(self, tokens):
        return self.fc(self.embed(tokens))


def random_table():
    return Bag(torch.randn(VOCAB, DIM))  # drawn from the global generator: changes with the seed


def fixed_table():
    # a table that is the same whatever the seed: what loading saved vectors gives
    return Bag(torch.randn(VOCAB, DIM, generator=torch.Generator().manual_seed(1234)))


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, VOCAB, (16, 6), generator=g), torch.arange(16) % 2


def _naive_random(factory, seed):
    """Plain PyTorch: build the model under two seeds; do the frozen weight matrices differ?"""
    torch.manual_seed(seed)
    a = factory()
    torch.manual_seed(seed + 1)
    b = dict(factory().named_parameters())
    return all(not torch.equal(p, b[n]) for n, p in a.named_parameters()
               if not p.requires_grad and p.dim() >= 2)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("factory,random", [(random_table, True), (fixed_table, False)])
def test_frozen_weights_are_named_random_when_they_change_with_the_seed(factory, random, seed):
    r = nndiag.check_probe("params", model=factory, batch=_batch(), loss_fn=nn.CrossEntropyLoss(),
                           seed=seed)
    assert _naive_random(factory, seed) is random
    assert r.metrics["frozen_random"] is random
    # a fact either way: a frozen random table and a frozen random backbone look the same
    assert r.status is Status.PASS and r.findings[0].severity is Status.PASS
    assert ("random draws" in r.findings[0].message) is random


def test_nothing_frozen_records_no_fact():
    r = nndiag.check_probe("params", model=lambda: nn.Linear(4, 2), batch=(torch.randn(8, 4),
                           torch.arange(8) % 2), loss_fn=nn.CrossEntropyLoss())
    assert "frozen_random" not in r.metrics and not r.findings
