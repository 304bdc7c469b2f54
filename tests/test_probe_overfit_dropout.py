"""overfit: is dropout what stops the batch from being fitted (nndiag/probes/overfit/dropout.py)?"""

import importlib

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.report import Status

SEEDS = [0, 1, 2]
BUG = "reference_models/zoo/bugs/digits_mlp_dropout.py"
HEALTHY = "reference_models/zoo/healthy/heavy_dropout_mlp.py"


def _naive(seed: int, module_name: str, masks: int = 200):
    """Plain PyTorch: fit the bug file's first batch with every dropout p set to 0 (same
    initialisation), then the batch accuracy with only ``module_name``'s dropout on."""
    mod = importlib.import_module("reference_models.zoo.bugs.digits_mlp_dropout")
    x, y = mod.dataloader()[0]
    torch.manual_seed(seed)
    model = mod.build_model()
    drops = {n: m for n, m in model.named_modules() if isinstance(m, nn.Dropout)}
    rates = {n: m.p for n, m in drops.items()}
    for m in drops.values():
        m.p = 0.0
    opt = mod.build_optimizer(model.parameters())
    first = None
    for step in range(300):
        opt.zero_grad()
        out = model(x)
        loss = mod.loss_fn(out, y)
        loss.backward()
        opt.step()
        first = loss.item() if first is None else first
        if (out.argmax(1) == y).all() and first - loss.item() >= 0.5 * first:
            break
    drops[module_name].p = rates[module_name]
    with torch.no_grad():
        acc = sum((model(x).argmax(1) == y).float().mean().item() for _ in range(masks)) / masks
    chance = torch.bincount(y).max().item() / len(y)
    return step + 1, (acc - chance) / (1 - chance)


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_as_keep_probability_fails_naming_the_layer(seed):
    res = nndiag.check_probe("overfit", BUG, seed=seed)
    assert res.status is Status.FAIL
    finding = res.findings[-1]
    assert finding.where == "5" and "Dropout p=0.9" in finding.message
    assert "nn.Dropout(0.1)" in finding.message  # the keep-probability reading
    steps, kept = _naive(seed, "5")
    assert res.metrics["dropout_off_steps"] == steps
    # 20 masks in the probe, 200 here: the mean accuracy of 32 samples agrees to a few points
    assert res.metrics["dropout_retention"] == pytest.approx(kept, abs=0.08)
    assert res.metrics["dropout_retention"] < 0.45


@pytest.mark.parametrize("seed", SEEDS)
def test_heavy_but_healthy_dropout_fits_and_passes(seed):
    res = nndiag.check_probe("overfit", HEALTHY, seed=seed)
    assert res.status is Status.PASS
    assert "dropout_retention" not in res.metrics  # fitted: the dropout-off run is not needed


@pytest.mark.parametrize("seed", SEEDS)
def test_dropout_is_not_blamed_when_the_dropout_off_run_does_not_fit_either(seed):
    # A slow learner (plain SGD at lr 0.02) with light dropout: with dropout off it does not fit
    # within the budget either, so dropout is not what stops it: 'cannot decide', as before.
    mod = importlib.import_module("reference_models.zoo.bugs.digits_mlp_dropout")
    res = nndiag.check_probe(
        "overfit", model=lambda: nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.1),
                                               nn.Linear(32, 10)),
        batch=mod.dataloader()[0], loss_fn=nn.CrossEntropyLoss(),
        optimizer=lambda p: torch.optim.SGD(p, lr=0.02), seed=seed)
    assert res.status is Status.SKIP
    assert res.metrics["dropout_off_fitted"] is False
