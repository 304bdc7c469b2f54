"""gradients: a large gradient judged against the same architecture at PyTorch's default
initialisation (nndiag/probes/gradients/baseline.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.probes.gradients.baseline import reset_to_defaults

REPO = Path(__file__).resolve().parents[1]
SEEDS = [0, 1, 2]


def run(seed=0, **kw):
    return nndiag.check_probe("gradients", seed=seed, threads=1, **kw)


def sine_batch(n=64, steps=40, seed=21):
    g = torch.Generator().manual_seed(seed)
    phase = torch.rand(n, 1, generator=g) * 6.2832
    t = torch.arange(steps + 1).float() * 0.3
    wave = torch.sin(t + phase) + 0.05 * torch.randn(n, steps + 1, generator=g)
    return wave[:, :-1].unsqueeze(-1), wave[:, -1:]


class ReluRnn(nn.Module):
    """Elman ReLU RNN with the recurrent matrix orthogonal at ``gain``."""

    def __init__(self, gain=None):
        super().__init__()
        self.rnn = nn.RNN(1, 32, nonlinearity="relu", batch_first=True)
        if gain is not None:
            nn.init.orthogonal_(self.rnn.weight_hh_l0, gain=gain)
        self.fc = nn.Linear(32, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[:, -1])


def _max_grad(model, batch):
    x, y = batch
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    return max(float(p.grad.abs().max()) for p in model.parameters())


@pytest.mark.parametrize("seed", SEEDS)
def test_exploding_from_the_init_fails_on_every_seed(seed):
    # Pascanu et al. 2013: a ReLU recurrence with gain 2 grows like 2^T over T = 40 steps; on some
    # draws max |g| stays below the absolute 1e6, but it is always >> the default init's
    batch = sine_batch()
    r = run(seed, model=lambda: ReluRnn(2.0), batch=batch, loss_fn=nn.MSELoss(),
            settings={"gradients": {"exploding_fail_max_abs": 1e300}})  # the baseline alone decides
    assert r.status.value == "fail", r.summary
    (f,) = [f for f in r.findings if f.metric == "init_grad_ratio"]
    # naive: the same seed's model, and a copy reset with each torch module's reset_parameters
    torch.manual_seed(seed)
    user = ReluRnn(2.0)
    default = ReluRnn(2.0)
    torch.manual_seed(seed)  # the reset draws under the run seed
    for m in default.modules():
        if type(m).__module__.startswith("torch.nn.") and hasattr(m, "reset_parameters"):
            m.reset_parameters()
    want = _max_grad(user, batch) / _max_grad(default, batch)
    assert f.value == pytest.approx(want, rel=1e-3)
    assert f.value >= 1e3 and "initialisation" in f.message


@pytest.mark.parametrize("seed", SEEDS)
def test_zoo_sine_rnn_fails_on_every_seed(seed):
    r = nndiag.check_probe("gradients", REPO / "reference_models/zoo/bugs/sine_rnn.py", seed=seed, threads=1)
    assert r.status.value == "fail", r.summary


@pytest.mark.parametrize("seed", SEEDS)
def test_large_gradient_the_default_init_gets_too_is_a_fact(seed):
    # inputs and targets on a scale of 30 with a summed loss: |g| in the hundreds by design; the
    # default initialisation gets the same, so it is a pass fact, not an explosion
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(256, 20, generator=g) * 30, torch.randn(256, 5, generator=g) * 30
    r = run(seed, model=lambda: nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)),
            batch=(x, y), loss_fn=nn.MSELoss(reduction="sum"))
    assert r.status.value == "pass", [f.message for f in r.findings]
    assert r.metrics["init_grad_ratio"] == pytest.approx(1.0)
    assert any(f.metric == "large_grad" and "default initialisation" in f.message for f in r.findings)


@pytest.mark.parametrize("seed", SEEDS)
def test_healthy_rnn_at_the_default_init_passes(seed):
    r = run(seed, model=ReluRnn, batch=sine_batch(), loss_fn=nn.MSELoss())
    assert r.status.value == "pass", [f.message for f in r.findings]


def test_reset_leaves_user_modules_alone():
    class Own(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.w = nn.Parameter(torch.full((3,), 7.0))

        def reset_parameters(self):  # the user's own init: the thing under test, never called
            nn.init.constant_(self.fc.weight, 5.0)

        def forward(self, x):
            return self.fc(x) * self.w

    torch.manual_seed(0)
    m = Own()
    nn.init.constant_(m.fc.weight, 3.0)
    assert reset_to_defaults(m) == 1  # the nn.Linear only
    assert not torch.all(m.fc.weight == 3.0) and not torch.all(m.fc.weight == 5.0)
    assert torch.all(m.w == 7.0)


def test_user_model_and_rng_unchanged():
    torch.manual_seed(3)
    model = ReluRnn(2.0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    r = run(0, model=model, batch=sine_batch(), loss_fn=nn.MSELoss(),
            settings={"gradients": {"exploding_fail_max_abs": 1e300}})
    assert r.status.value != "error", r.summary
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
