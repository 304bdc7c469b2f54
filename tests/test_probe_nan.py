"""The nan probe judges every training run nndiag makes, not only its own 20 steps (issue 9):
a loss that goes non-finite at step 42 of the overfit run is a ``nan`` finding, located."""

from __future__ import annotations

import math
from pathlib import Path

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
def test_nan_alone_without_the_long_watch_sees_its_own_pass_only(seed):
    # Without the overfit run and with the long watch off there are only nan's own 20 steps,
    # which stay finite here.
    report = nndiag.check(probes=["nan"], seed=seed, settings={"nan": {"watch_steps": 20}},
                          **slow_divergence(seed))
    nan = report.subjects[0].result("nan")
    assert nan.metrics["first_nonfinite_step"] is None
    assert nan.metrics["steps_run"] == 20
    # no NaN yet, but the diverging loss already climbs far above its start: a spike warning
    assert nan.status is Status.WARN and nan.findings[0].metric == "loss_spike"


@pytest.mark.parametrize("seed", SEEDS)
def test_nan_alone_long_watch_finds_a_late_divergence(seed):
    kw = slow_divergence(seed)
    expected = first_nonfinite_step_by_hand(kw, seed)
    report = nndiag.check(probes=["nan"], seed=seed, **kw)
    nan = report.subjects[0].result("nan")
    assert nan.status is Status.FAIL
    assert nan.metrics["first_nonfinite_step"] == expected
    assert "300-step watch" in nan.findings[0].message


def hand_written_bce(seed: int, by_hand: bool = True):
    """Separable blobs, a sigmoid output and BCE written out as -(y log p + (1-y) log(1-p)): once
    the fit is confident p rounds to exactly 1.0 and log(1 - p) = -inf, dozens of steps in (the
    zoo's blobs_logreg_bce). ``by_hand=False``: the same model with BCE on the logits (healthy)."""
    g = torch.Generator().manual_seed(100 + seed)
    x = torch.cat([torch.randn(32, 4, generator=g) + 3, torch.randn(32, 4, generator=g) - 3])
    y = torch.cat([torch.ones(32, 1), torch.zeros(32, 1)])

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(4, 16), nn.Linear(16, 1)

        def forward(self, x):
            z = self.fc2(torch.relu(self.fc1(x)))
            return torch.sigmoid(z) if by_hand else z

    def bce(p, t):
        return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()

    return dict(model=Net, batch=(x, y), loss_fn=bce if by_hand else nn.BCEWithLogitsLoss(),
                optimizer=lambda p: torch.optim.Adam(p, lr=0.025))


@pytest.mark.parametrize("seed", SEEDS)
def test_long_watch_locates_log_of_exact_zero_in_a_hand_written_bce(seed):
    kw = hand_written_bce(seed)
    expected = first_nonfinite_step_by_hand(kw, seed)
    assert expected is not None and 20 <= expected < 300, "the fixture must turn -inf within the watch"
    nan = nndiag.check(probes=["nan"], seed=seed, **kw).subjects[0].result("nan")
    assert nan.status is Status.FAIL
    assert nan.metrics["first_nonfinite_step"] == expected
    assert nan.metrics["producer_op"] == "torch.log"


@pytest.mark.parametrize("seed", SEEDS)
def test_long_watch_passes_the_same_model_with_bce_on_logits(seed):
    kw = hand_written_bce(seed, by_hand=False)
    assert first_nonfinite_step_by_hand(kw, seed) is None
    nan = nndiag.check(probes=["nan"], seed=seed, **kw).subjects[0].result("nan")
    assert nan.status is Status.PASS
    assert nan.metrics["steps_run"] == 300


def test_watch_steps_follow_the_counted_flops_not_a_clock():
    from nndiag.probes.nan_watch import watch_steps

    assert watch_steps(None, 300, 5e9) == 0          # the cost could not be counted: no watch
    assert watch_steps(1e6, 300, 5e9) == 300         # cheap: the whole watch
    assert watch_steps(1e8, 300, 5e9) == 50          # costly: what the budget pays for
    assert watch_steps(0.0, 300, 5e9) == 300         # nothing counted (embedding lookups only)


def test_step_flops_counts_a_linear_layer_and_a_fused_lstm():
    from nndiag.probes.nan_watch import step_flops
    from nndiag.loading import subject_from_module  # noqa: F401 - the API builds the subject
    from nndiag.api import subject_from_objects
    from nndiag.workbench import Workbench

    x, y = torch.randn(8, 16), torch.randn(8, 4)
    bench = Workbench(subject_from_objects(model=lambda: nn.Linear(16, 4), batch=(x, y),
                                           loss_fn=nn.MSELoss()))
    # forward 2*8*16*4 FLOPs; backward as much again (the weight's gradient; the input needs none)
    assert step_flops(bench) == pytest.approx(2 * 2 * 8 * 16 * 4)

    class Rnn(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 8, batch_first=True)

        def forward(self, x):
            return self.lstm(x)[0][:, -1]

    xs, ys = torch.randn(2, 5, 4), torch.randn(2, 8)
    bench = Workbench(subject_from_objects(model=Rnn, batch=(xs, ys), loss_fn=nn.MSELoss()))
    weights = sum(p.numel() for p in Rnn().parameters())
    assert step_flops(bench) == pytest.approx(6 * weights * 2 * 5)  # 10 tokens, the fused LSTM


def test_healthy_overfit_run_adds_no_nan_finding():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    report = nndiag.check(probes=["nan", "overfit"], model=lambda: nn.Linear(4, 1), batch=(x, y),
                          loss_fn=nn.MSELoss())
    assert report.subjects[0].result("nan").status is Status.PASS


def spiky_regression(lr: float):
    """A small ReLU regression under Adam: at lr 1.0 the loss jumps ~100x its start at step 2 and
    stays finite (an LR at the edge of divergence); at lr 0.01 it falls smoothly."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])
    return dict(model=lambda: nn.Sequential(nn.Linear(4, 32), nn.ReLU(), nn.Linear(32, 1)),
                batch=(x, y), loss_fn=nn.MSELoss(), optimizer=lambda p: torch.optim.Adam(p, lr=lr))


def naive_spike(losses):
    """Largest rise above the best loss so far (one batch), over the initial loss."""
    return max(0.0, *(losses[t] - min(losses[:t]) for t in range(1, len(losses)))) / losses[0]


def test_loss_spike_against_a_hand_computed_curve():
    from nndiag.probes.nan_watch import loss_spike

    # two batches alternating: batch 1 is always harder, which is no spike
    assert loss_spike([4.0, 8.0, 3.0, 7.0, 2.0, 6.0], 2) == (0.0, 0)
    # batch 0 rises from its best 3.0 to 11.0 at step 4: 8 / 4 = 2x the initial loss
    assert loss_spike([4.0, 8.0, 3.0, 7.0, 11.0, 6.0], 2) == (2.0, 4)
    assert loss_spike([4.0, 8.0, 3.0, 7.0, 11.0, 6.0], 2, scale=16.0) == (0.5, 4)  # a larger scale
    assert loss_spike([-1.0, -2.0, -3.0], 1) is None  # a loss that starts negative: not judged
    assert loss_spike([1.0, float("nan")], 1) is None


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lr,status", [(1.0, Status.WARN), (0.01, Status.PASS)])
def test_loss_spike_in_the_watched_run(lr, status, seed):
    kw = spiky_regression(lr)
    nan = nndiag.check(probes=["nan"], seed=seed, **kw).subjects[0].result("nan")
    torch.manual_seed(seed)
    model = kw["model"]()
    opt = kw["optimizer"](model.parameters())
    x, y = kw["batch"]
    losses = []
    for _ in range(nan.metrics["steps_run"]):
        opt.zero_grad()
        loss = kw["loss_fn"](model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert nan.data["loss_curve"] == pytest.approx(losses, rel=1e-4)
    # the scale: the larger of the initial loss and the targets' variance (MSE's constant baseline)
    scale = max(losses[0], float(y.var(unbiased=False)))
    assert nan.metrics["loss_spike"] == pytest.approx(naive_spike(losses) * losses[0] / scale,
                                                      rel=1e-4, abs=1e-6)
    assert nan.status is status
    if status is Status.WARN:
        assert nan.findings[0].metric == "loss_spike" and nan.metrics["loss_spike"] > 10


@pytest.mark.parametrize("seed", SEEDS)
def test_zoo_hand_written_bce_is_caught_by_the_long_watch(seed):
    import importlib

    mod = importlib.import_module("reference_models.zoo.bugs.blobs_logreg_bce")
    batches = mod.dataloader()[:4]  # the probe batches: the first 256 samples
    torch.manual_seed(seed)
    model = mod.build_model()
    opt = mod.build_optimizer(model.parameters())
    expected = None
    for step in range(300):
        x, y = batches[step % 4]
        opt.zero_grad()
        loss = mod.loss_fn(model(x), y)
        if not math.isfinite(loss.item()):
            expected = step
            break
        loss.backward()
        opt.step()
    assert expected is not None and expected >= 20
    path = Path(mod.__file__)
    nan = nndiag.check(path, probes=["nan"], seed=seed).subjects[0].result("nan")
    assert nan.status is Status.FAIL
    assert nan.metrics["first_nonfinite_step"] == expected
    assert nan.metrics["producer_op"] == "torch.log"


def test_a_trained_model_restarting_its_optimizer_is_no_spike(tmp_path):
    # Trained weights start near the loss floor; a fresh Adam's first steps push the loss up from
    # there. Judged against the constant prediction's loss (the targets' variance), that is small.
    kw = spiky_regression(0.01)
    torch.manual_seed(0)
    model = kw["model"]()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = kw["batch"]
    for _ in range(2000):
        opt.zero_grad()
        kw["loss_fn"](model(x), y).backward()
        opt.step()
    trained = kw["model"]()
    trained.load_state_dict(model.state_dict())
    kw["model"] = trained
    kw["optimizer"] = lambda p: torch.optim.Adam(p, lr=0.05)
    nan = nndiag.check(probes=["nan"], **kw).subjects[0].result("nan")
    assert nan.metrics["loss_scale"] == pytest.approx(float(y.var(unbiased=False)), rel=1e-5)
    assert nan.status is Status.PASS
