"""Injected faults on real small training runs (digits), each found at the right step and place."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import nndiag.watch as nw
from watch_helpers import make, train

SEEDS = (0, 1, 2)
LOG = 10


def events(report, check):
    return [f for f in report.subjects[0].result(check).findings if str(f.severity) != "pass"]


def step_of(message: str) -> int:
    import re

    return int(re.search(r"step (\d+)", message).group(1))


@pytest.mark.parametrize("seed", SEEDS)
def test_nan_from_one_module_is_located_at_its_step_and_stops_before_the_update(seed):
    k = 37 + seed
    model, opt = make(seed)

    def inject(step, model, opt):
        if step == k:
            model.faulty.armed.fill_(1.0)

    with pytest.raises(nw.TrainingStopped) as info:
        with nw.watch(model, opt, log_every=LOG, on_event=lambda e: None) as w:
            train(model, opt, 200, seed, w, inject)
    ev = info.value.event
    assert ev.check == "watch.nan" and ev.step == k
    assert "faulty (Faulty)" in ev.where and "torch.log" in ev.message and "inputs finite" in ev.message
    # stopped before optimizer.step(): the weights never saw the NaN
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
    assert info.value.report.subjects[0].result("watch.nan").status.value == "fail"
    assert w.step_index == k  # the tripping step was never closed


@pytest.mark.parametrize("seed", SEEDS)
def test_lr_jump_divergence_is_found_with_its_onset_and_the_lr_event(seed):
    k = 120
    model, opt = make(seed, lr=1e-3)

    def jump(step, model, opt):
        if step == k:
            for g in opt.param_groups:
                g["lr"] = 0.5

    with nw.watch(model, opt, log_every=LOG, on_event=lambda e: None,
                  policy={"nan": "report"}) as w:
        train(model, opt, 200, seed, w, jump)
    found = events(w.report, "watch.loss")
    assert found, w.report.subjects[0].result("watch.loss").summary
    onset = step_of(found[0].message)
    assert k <= onset < k + 2 * LOG
    assert "jumped from 0.001 to 0.5 at step 120" in found[0].message


@pytest.mark.parametrize("seed", SEEDS)
def test_a_layer_pushed_dead_mid_run_is_named_with_its_onset(seed):
    k, every = 103, 10
    model, opt = make(seed)

    def kill(step, model, opt):
        if step == k:
            with torch.no_grad():
                model.fc2.bias -= 1e3  # every unit of act2 negative on every input

    with nw.watch(model, opt, log_every=LOG, sample_every=every, on_event=lambda e: None) as w:
        train(model, opt, 200, seed, w, kill)
    found = events(w.report, "watch.units")
    assert [f.where for f in found] == ["act2 (ReLU)"]
    onset = step_of(found[0].message)
    assert k < onset <= k + every and str(found[0].severity) == "fail"
    assert "became dead" in found[0].message


@pytest.mark.parametrize("seed", SEEDS)
def test_a_fading_gradient_is_reported_as_vanishing_in_the_layer_it_reaches(seed):
    k = 100
    model, opt = make(seed)

    def fade(step, model, opt):
        if step >= k:
            model.fade.gain = 0.7 ** (step - k + 1)

    with nw.watch(model, opt, log_every=LOG, on_event=lambda e: None) as w:
        train(model, opt, 220, seed, w, fade)
    found = events(w.report, "watch.gradients")
    assert [f.where for f in found] == ["fc1"], [f.message for f in found]
    onset = step_of(found[0].message)
    # 0.7**n < 1e-3 from n = 20: the norm crosses the level about 20 steps after k
    assert k + 10 <= onset <= k + 20 + LOG and "vanishing" in found[0].message


@pytest.mark.parametrize("seed", SEEDS)
def test_grad_scaler_warm_up_skips_are_not_reported(seed):
    model, opt = make(seed)
    calls = []

    def overflow_early(g):  # the first 5 scaled backward passes overflow, as at AMP start-up
        calls.append(1)
        return g * math.inf if len(calls) <= 5 else g

    model.fc1.weight.register_hook(overflow_early)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 16)
    with nw.watch(model, opt, scaler=scaler, log_every=LOG, on_event=lambda e: None) as w:
        train(model, opt, 100, seed, w, scaler=scaler)
    rep = w.report.subjects[0]
    amp = rep.result("watch.amp")
    assert amp.metrics["skipped_steps"] == 5, amp.summary
    assert amp.metrics["scale"] == 2.0 ** 11
    assert w.timeline.skipped[0] and not w.timeline.skipped[-1]
    assert all(r.status.value == "pass" for r in rep.results), [(r.probe, r.summary) for r in rep.results]


@pytest.mark.parametrize("seed", SEEDS)
def test_a_collapsing_grad_scaler_scale_is_reported_and_stops(seed):
    model, opt = make(seed)
    model.fc1.weight.register_hook(lambda g: g * math.inf)  # inf every step: the scale halves forever
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 4)
    with pytest.raises(nw.TrainingStopped) as info:
        with nw.watch(model, opt, scaler=scaler, log_every=5, on_event=lambda e: None) as w:
            train(model, opt, 100, seed, w, scaler=scaler)
    ev = info.value.event
    assert ev.check == "watch.amp" and "collapsed" in ev.message and ev.step < 10
    assert w.report.subjects[0].result("watch.nan").status.value == "pass"  # skips are not NaN bugs


class _SumNet(nn.Module):
    """Linear-ReLU-Linear trained on the *sum* of its outputs: the loss's gradient does not depend
    on the output, so a NaN input row gives NaN weight gradients but finite bias gradients (the
    ReLU's backward masks the NaN rows to 0 and the sum's gradient is all ones)."""

    def __init__(self, hidden: int = 16, first_in: int = 8, out: int = 2) -> None:
        super().__init__()
        self.inp = nn.Linear(first_in, hidden)
        self.act = nn.ReLU()
        self.out = nn.Linear(hidden, out)

    def forward(self, x):
        return self.out(self.act(self.inp(x)))


def _sum_loss_run(model, opt, k, steps=20, seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    with nw.watch(model, opt, on_event=lambda e: None, **kw) as w:
        for step in range(steps):
            x = torch.randn(4, model.inp.in_features, generator=g)
            if step == k:
                x[0, 0] = float("nan")  # one bad sample in the data
            opt.zero_grad(set_to_none=True)
            loss = model(x).sum()
            loss.backward()
            opt.step()
            w.step(loss)
    return w


@pytest.mark.parametrize("seed", SEEDS)
def test_a_nan_input_whose_gradients_reach_no_bias_stops_before_the_update(seed):
    """The small weights are checked every step with the biases: the NaN input at step k trips at k,
    before SGD writes it into the weights (k is not a full-norm step on the CPU)."""
    torch.manual_seed(seed)
    model = _SumNet()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    k = 6 + seed
    with pytest.raises(nw.TrainingStopped) as info:
        _sum_loss_run(model, opt, k, seed=seed)
    ev = info.value.event
    assert ev.check == "watch.nan" and ev.step == k, ev.message
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())


@pytest.mark.parametrize("seed", SEEDS)
def test_a_non_finite_loss_the_flag_missed_is_named_at_its_own_step(seed):
    """Weights too large for the every-step flag (5000 elements each): the NaN input's gradients
    reach no checked parameter, the update writes NaN into the weights, and a later check trips.
    The verdict names the step whose loss was first non-finite, not the later one."""
    torch.manual_seed(seed)
    model = _SumNet(hidden=50, first_in=100, out=100)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    k = 6 + seed
    with pytest.raises(nw.TrainingStopped) as info:
        _sum_loss_run(model, opt, k, seed=seed, log_every=25)
    ev = info.value.event
    assert ev.check == "watch.nan" and ev.step == k, ev.message
    assert "loss" in ev.message and f"step {k}" in ev.message


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("loss_kind", ["sum", "cross_entropy"])
def test_a_nan_in_the_data_is_named_as_the_data_not_a_layer(seed, loss_kind):
    """A bad sample (one NaN in the batch) is the commonest NaN of all: the verdict says the batch
    came in non-finite, at its step, instead of 'the replayed forward was finite'."""
    torch.manual_seed(seed)
    model = _SumNet()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    k = 5 + seed
    g = torch.Generator().manual_seed(seed)
    with pytest.raises(nw.TrainingStopped) as info:
        with nw.watch(model, opt, on_event=lambda e: None) as w:
            for step in range(20):
                x, y = torch.randn(8, 8, generator=g), torch.randint(0, 2, (8,), generator=g)
                if step == k:
                    x[3, 5] = float("nan")
                opt.zero_grad(set_to_none=True)
                out = model(x)
                loss = out.sum() if loss_kind == "sum" else nn.functional.cross_entropy(out, y)
                loss.backward()
                opt.step()
                w.step(loss)
    ev = info.value.event
    assert ev.check == "watch.nan" and ev.step == k, ev.message
    assert ev.where == "the batch" and "argument 0" in ev.message and "1 NaN/Inf of 64" in ev.message
    assert all(bool(torch.isfinite(p).all()) for p in model.parameters())
