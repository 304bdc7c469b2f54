"""The nan probe judges every training run nndiag makes, not only its own 20 steps (issue 9):
a loss that goes non-finite at step 42 of the overfit run is a ``nan`` finding, located."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.report import Status

SEEDS = [0, 1, 2]


def slow_divergence(seed: int):
    """A linear regression whose SGD step is just past the stability limit: finite for 20+ steps,
    Inf after some dozens (catalogue 48934338's 'LR too high', slowed down)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 4, generator=g) * 3
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return dict(model=lambda: nn.Linear(4, 1), batch=(x, y), loss_fn=nn.MSELoss(),
                optimizer=lambda p: torch.optim.SGD(p, lr=0.16))


def first_nonfinite_step_by_hand(kw, seed: int, steps: int = 300) -> int | None:
    """Plain PyTorch: train on the one batch and return the first step whose loss is not finite."""
    torch.manual_seed(seed)
    model = kw["model"]()
    opt = kw["optimizer"](model.parameters())
    x, y = kw["batch"]
    for step in range(steps):
        opt.zero_grad()
        loss = kw["loss_fn"](model(x), y)
        if not math.isfinite(float(loss.detach())):
            return step
        loss.backward()
        opt.step()
    return None


@pytest.mark.parametrize("seed", SEEDS)
def test_nan_seen_in_the_overfit_run_is_a_located_nan_finding(seed):
    kw = slow_divergence(seed)
    expected = first_nonfinite_step_by_hand(kw, seed)
    assert expected is not None and expected >= 20, "the fixture must diverge after nan's own pass"
    report = nndiag.check(probes=["nan", "overfit"], seed=seed, **kw)
    nan = report.subjects[0].result("nan")
    assert nan.status is Status.FAIL
    assert nan.metrics["first_nonfinite_step"] == expected
    assert "overfit run" in nan.findings[0].message
    assert "F.mse_loss" in nan.findings[0].message  # the producer, found by the replay


@pytest.mark.parametrize("seed", SEEDS)
def test_nan_alone_watches_its_own_pass_only(seed):
    # Without the overfit run there are only nan's own 20 steps, which stay finite here.
    report = nndiag.check(probes=["nan"], seed=seed, **slow_divergence(seed))
    nan = report.subjects[0].result("nan")
    assert nan.status is Status.PASS
    assert nan.metrics["first_nonfinite_step"] is None


def test_healthy_overfit_run_adds_no_nan_finding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    report = nndiag.check(probes=["nan", "overfit"], model=lambda: nn.Linear(4, 1), batch=(x, y),
                          loss_fn=nn.MSELoss())
    assert report.subjects[0].result("nan").status is Status.PASS
