"""params: the frozen-weights fact (are frozen weights random draws, never loaded?), and the fail
when frozen random layers are what stops the model fitting one batch."""

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.report import Status

SEEDS = [0, 1, 2]
VOCAB, DIM = 50, 32  # 16 samples in 32 dimensions: a linear head fits any labels, frozen or not


class Bag(nn.Module):
    def __init__(self, vectors):
        super().__init__()
        self.embed = nn.EmbeddingBag.from_pretrained(vectors, mode="mean")  # freeze=True
        self.fc = nn.Linear(vectors.shape[1], 2)

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


# ---- frozen random layers that stop the fit ----------------------------------------------------
NARROW = 3  # a 3-dimensional random table: a linear head on it cannot separate the batch below


def narrow_random():
    return Bag(torch.randn(VOCAB, NARROW))


def narrow_fixed():
    return Bag(torch.randn(VOCAB, NARROW, generator=torch.Generator().manual_seed(1234)))


def _rule_batch(n=48):
    """Labels from which words occur (the zoo's bag-of-words rule): learnable by a trained table."""
    g = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, VOCAB, (n, 8), generator=g)
    score = (tokens < 8).sum(1) - ((tokens >= 8) & (tokens < 16)).sum(1)
    return tokens, (score > 0).long()


LR = 1e-2


def _adam(params):
    return torch.optim.Adam(params, lr=LR)


def _naive_fit(factory, seed, thaw, steps=300):
    """Plain PyTorch: Adam at LR on the batch for ``steps`` steps (the overfit run's budget); the
    best batch accuracy reached."""
    torch.manual_seed(seed)
    model = factory()
    if thaw:
        model.embed.weight.requires_grad_(True)
    opt = _adam([p for p in model.parameters() if p.requires_grad])
    x, y = _rule_batch()
    best = 0.0
    for _ in range(steps):
        out = model(x)
        best = max(best, float((out.argmax(1) == y).float().mean()))
        if best == 1.0:
            break
        opt.zero_grad()
        nn.functional.cross_entropy(out, y).backward()
        opt.step()
    return best


@pytest.mark.parametrize("seed", SEEDS)
def test_frozen_random_layers_that_stop_the_fit_fail(seed):
    # the naive re-computation: frozen, the head cannot fit the batch; trainable, the model can
    assert _naive_fit(narrow_random, seed, thaw=False) < 1.0
    assert _naive_fit(narrow_random, seed, thaw=True) == 1.0
    r = nndiag.check_probe("params", model=narrow_random, batch=_rule_batch(),
                           loss_fn=nn.CrossEntropyLoss(), optimizer=_adam, seed=seed)
    assert r.status is Status.FAIL, r.findings
    fail = [f for f in r.findings if f.severity is Status.FAIL][0]
    assert fail.where == "embed" and "stop the model from fitting one batch" in fail.message
    assert r.metrics["unfrozen_fit_steps"] < r.metrics["frozen_fit_steps"] == 300


@pytest.mark.parametrize("seed", SEEDS)
def test_loaded_frozen_layers_are_a_fact_even_when_the_head_cannot_fit(seed):
    # the same narrow table, but the same values whatever the seed (loaded): linear probing of
    # loaded features that cannot fit one batch is a choice, not a bug nndiag can name
    assert _naive_fit(narrow_fixed, seed, thaw=False) < 1.0
    r = nndiag.check_probe("params", model=narrow_fixed, batch=_rule_batch(),
                           loss_fn=nn.CrossEntropyLoss(), optimizer=_adam, seed=seed)
    assert r.status is Status.PASS and r.metrics["frozen_random"] is False
    assert "unfrozen_fit_steps" not in r.metrics
