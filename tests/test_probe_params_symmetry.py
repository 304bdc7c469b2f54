"""params names broken symmetry (issue 9): a layer whose units start identical and stay identical."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.report import Status
from nndiag.symmetry import identical_unit_layers

SEEDS = [0, 1, 2]


def mlp(init: str):
    def build():
        m = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.Tanh(), nn.Linear(16, 3))
        if init == "constant-all":  # every weight the same constant: symmetric end to end
            for layer in m:
                if isinstance(layer, nn.Linear):
                    nn.init.constant_(layer.weight, 0.05)
                    nn.init.zeros_(layer.bias)
        elif init == "zero-output":  # a zero-initialised head: the loss separates its units
            nn.init.zeros_(m[4].weight)
            nn.init.zeros_(m[4].bias)
        return m
    return build


def batch(seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(32, 6, generator=g), torch.randint(0, 3, (32,), generator=g)


def naive_identical_rows(w: torch.Tensor) -> bool:
    """By hand: every row equal to the first."""
    return all(torch.equal(w[i], w[0]) for i in range(w.shape[0]))


@pytest.mark.parametrize("seed", SEEDS)
def test_constant_init_everywhere_fails_naming_the_hidden_layers(seed):
    model = mlp("constant-all")()
    found = {u.layer for u in identical_unit_layers(model)}
    assert found == {str(i) for i, l in enumerate(model)
                     if isinstance(l, nn.Linear) and naive_identical_rows(l.weight)}
    r = nndiag.check_probe("params", seed=seed, model=mlp("constant-all"), batch=batch(seed),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    failed = {f.where for f in r.findings if f.severity is Status.FAIL}
    assert {"0", "2"} <= failed  # the hidden layers stay identical
    assert "4" not in failed  # the output layer's units get different targets: they separate
    assert "broken symmetry" in r.findings[0].message


@pytest.mark.parametrize("seed", SEEDS)
def test_zero_initialised_head_is_a_fact_and_random_init_has_no_finding(seed):
    r = nndiag.check_probe("params", seed=seed, model=mlp("zero-output"), batch=batch(seed),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS
    assert [f.where for f in r.findings if f.metric == "identical_units"] == ["4"]
    r = nndiag.check_probe("params", seed=seed, model=mlp("random"), batch=batch(seed),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS and r.metrics["identical_unit_layers"] == 0
