"""The watch's per-step fast paths give the same answers as the plain computations they replace."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

import nndiag.watch as nw
from nndiag.watch import recorder as rec
from nndiag.watch.timeline import Timeline


def _params(*shapes):
    out = []
    for i, shape in enumerate(shapes):
        p = nn.Parameter(torch.zeros(shape))
        p.grad = torch.randn(shape, generator=torch.Generator().manual_seed(i))
        out.append(p)
    return out


@pytest.mark.parametrize("flatten", [rec._flatten, rec._flatten_by_cat])  # torch's, and ours
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", [0, 1, 2])
def test_the_small_parameter_flag_sees_one_bad_value_anywhere(monkeypatch, flatten, bad, where):
    monkeypatch.setattr(rec, "_flatten", flatten)
    params = _params((10,), (4, 8), (3, 2, 2))  # a bias, a 2-D weight, a 3-D one
    r = rec.Recorder(["a.bias", "b.weight", "c.weight"], params)
    assert r.sentinel_finite(params)
    params[where].grad.view(-1)[-1] = bad
    assert not r.sentinel_finite(params)


def test_the_flag_takes_missing_and_non_contiguous_gradients():
    params = _params((6,), (5, 7))
    params[1].grad = torch.randn(7, 5).t()  # a transposed (non-contiguous) gradient
    params[0].grad = None
    r = rec.Recorder(["a", "b"], params)
    assert r.sentinel_finite(params)
    params[1].grad[2, 3] = float("nan")
    assert not r.sentinel_finite(params)
    assert r.sentinel_finite([params[0]])  # no gradient at all: nothing is non-finite


def test_float16_gradients_whose_sum_overflows_float16_are_finite():
    p = nn.Parameter(torch.zeros(4096, dtype=torch.float16))
    p.grad = torch.full((4096,), 60000.0, dtype=torch.float16)  # sum 2.5e8 > 65504
    r = rec.Recorder(["w"], [p])
    assert r.sentinel_finite([p])
    p.grad[7] = float("inf")
    assert not r.sentinel_finite([p])


def test_losses_are_read_in_one_go_or_one_by_one():
    same = [torch.tensor(1.5), torch.tensor(2.25), torch.tensor(-3.0)]
    assert rec._as_floats(same) == [1.5, 2.25, -3.0]
    assert rec._as_floats([torch.tensor([0.5]), torch.tensor([4.0])]) == [0.5, 4.0]
    mixed = [torch.tensor(1.0), torch.tensor([2.0]), torch.tensor(0.25, dtype=torch.bfloat16)]
    assert rec._as_floats(mixed) == [1.0, 2.0, 0.25]
    with pytest.raises(RuntimeError):  # a loss of several values is an error, as before
        rec._as_floats([torch.ones(2), torch.ones(2)])


@pytest.mark.parametrize("host_limit", [rec.HOST_NORMS, 0])  # host sums, then the matrix product
def test_layer_norms_from_parameter_norms(monkeypatch, host_limit):
    monkeypatch.setattr(rec, "HOST_NORMS", host_limit)
    names = ["fc1.weight", "fc1.bias", "fc2.weight", "out"]
    r = rec.Recorder(names, _params((3,), (3,), (3,), (3,)))
    rows = [torch.tensor([3.0, 4.0, 12.0, 1.0]), torch.tensor([float("nan"), 0.0, 0.0, 2.0])]
    per_layer, glob = r._layer_norms(rows)
    assert r.layers == ["fc1", "fc2", "out"]
    assert per_layer[0] == pytest.approx([5.0, 12.0, 1.0])
    assert glob[0] == pytest.approx(math.sqrt(9 + 16 + 144 + 1))
    assert math.isnan(per_layer[1][0]) and per_layer[1][1:] == [0.0, 2.0] and math.isnan(glob[1])


def test_flush_fills_measured_and_unmeasured_steps():
    params = _params((2,), (2,))
    r = rec.Recorder(["a.weight", "b.weight"], params)
    steps = [(torch.tensor([3.0, 4.0]), True), (rec.UNMEASURED, True), (None, False)]
    for i, (row, stepped) in enumerate(steps):
        r.record_grads(row)
        r.record_step(torch.tensor(float(i)), 0.1, stepped)
    tl = Timeline()
    assert r.flush(tl) == 3
    assert tl.loss == [0.0, 1.0, 2.0] and tl.measured == [True, False, False]
    assert tl.skipped == [False, False, True]
    assert tl.grad_norm[0] == pytest.approx(5.0) and all(math.isnan(v) for v in tl.grad_norm[1:])
    assert tl.layer_grad["a"][0] == pytest.approx(3.0) and math.isnan(tl.layer_grad["b"][2])


def test_the_step_post_hook_goes_once_w_step_closes_the_steps():
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 4)
    with nw.watch(model, opt) as w:
        assert len(opt._optimizer_step_post_hooks) == 1  # w.step() may never be called
        for step in range(3):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            w.step(loss)
            assert len(opt._optimizer_step_post_hooks) == 0  # every step is closed by w.step()
    assert w.step_index == 3 and w.timeline.skipped == [False] * 3
    assert w.timeline.loss[0] == pytest.approx(float(loss.detach()), rel=10)  # the losses are there
    assert len(opt._optimizer_step_pre_hooks) == 0 and len(model._forward_pre_hooks) == 0
