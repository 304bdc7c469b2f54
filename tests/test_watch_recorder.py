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


# the fused kernel (the default), and the general path with torch's flatten and with ours
PATHS = ["fused", "flatten", "cat"]


def _recorder(monkeypatch, path, names, params):
    r = rec.Recorder(names, params)
    if path != "fused":
        r._fused_flag = False
        monkeypatch.setattr(rec, "_flatten", rec._flatten if path == "flatten" else rec._flatten_by_cat)
    return r


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("where", [0, 1, 2])
def test_the_small_parameter_flag_sees_one_bad_value_anywhere(monkeypatch, path, bad, where):
    params = _params((10,), (4, 8), (3, 2, 2))  # a bias, a 2-D weight, a 3-D one
    r = _recorder(monkeypatch, path, ["a.bias", "b.weight", "c.weight"], params)
    assert r.sentinel_finite(params)
    params[where].grad.view(-1)[-1] = bad
    assert not r.sentinel_finite(params)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_the_fused_flag_leaves_every_gradient_bit_for_bit(dtype):
    """GradScaler's kernel at a scale of exactly 1 writes x * 1 = x: the user's gradients, subnormals
    and signed zeros included, are unchanged."""
    params = []
    for i, shape in enumerate([(10,), (4, 8)]):
        p = nn.Parameter(torch.zeros(shape, dtype=dtype))
        p.grad = torch.randn(shape, generator=torch.Generator().manual_seed(i)).to(dtype)
        params.append(p)
    params[0].grad[:3] = torch.tensor([-0.0, 1e-40, -1e-40]).to(dtype)
    before = [p.grad.clone() for p in params]
    r = rec.Recorder(["a.bias", "b.weight"], params)
    assert r.sentinel_finite(params) and r._fused_flag
    for p, b in zip(params, before):
        assert torch.equal(p.grad.view(torch.int8), b.view(torch.int8))  # bit patterns


def test_gradients_the_fused_flag_cannot_take_use_the_general_path():
    # a sparse gradient (nn.Embedding(sparse=True)): the kernel has no sparse version
    emb = nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    r = rec.Recorder(["emb.weight"], [emb.weight])
    assert r.sentinel_finite([emb.weight]) and not r._fused_flag
    # a gradient that is part of a graph (create_graph=True) is never written to
    w = nn.Parameter(torch.randn(4))
    (w ** 3).sum().backward(create_graph=True)
    version = w.grad._version
    r = rec.Recorder(["w"], [w])
    assert r.sentinel_finite([w]) and w.grad._version == version
    w.grad.data[0] = float("nan")
    assert not r.sentinel_finite([w])


def test_the_flag_watches_the_biases_and_scales_when_the_model_has_them():
    from nndiag.watch.core import sentinel_parameters

    lstm = nn.LSTM(1, 32)  # every tensor is at most 4096 elements: the biases, then the weights
    assert [tuple(p.shape) for p in sentinel_parameters(list(lstm.parameters()))] == \
        [(128,), (128,), (128, 32), (128, 1)]
    no_bias = nn.Sequential(nn.Linear(4, 8, bias=False), nn.Linear(8, 2, bias=False))
    assert len(sentinel_parameters(list(no_bias.parameters()))) == 2  # small weights instead
    big = nn.Linear(100, 100, bias=False)
    assert sentinel_parameters(list(big.parameters())) == [big.weight]  # the only one there is
    # weights within the budget, the output layer (registered last) first; large ones left out
    mlp = nn.Sequential(nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))
    picked = sentinel_parameters(list(mlp.parameters()))
    assert [tuple(p.shape) for p in picked] == [(128,), (64,), (10,), (10, 64)]
    many = [nn.Parameter(torch.zeros(64, 64)) for _ in range(6)]  # 4096 each
    assert len(sentinel_parameters(many)) == 4 and sentinel_parameters(many)[0] is many[-1]


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


def _routed_steps(monkeypatch, steps=12, **watch_kwargs):
    """The steps whose step pre-hook took the general path (observe_gradients)."""
    from nndiag.watch.core import Watch

    general = []
    real = Watch.observe_gradients
    monkeypatch.setattr(Watch, "observe_gradients", lambda self: (general.append(self.step_index), real(self))[1])
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 4)
    with nw.watch(model, opt, on_event=lambda e: None, **watch_kwargs) as w:
        for _ in range(steps):
            opt.zero_grad()
            loss = model(x).pow(2).mean()
            loss.backward()
            opt.step()
            w.step(loss)
    return general, w


def test_steady_steps_take_the_one_frame_hook_and_the_others_the_general_path(monkeypatch):
    """On the CPU four steps in five are steady (nndiag.watch.steady): only the full-norm steps
    (every 5th) and the sample steps (every 7th here) go through observe_gradients. The steady
    ones still record their LR and check the small parameters' gradients."""
    general, w = _routed_steps(monkeypatch, sample_every=7)
    assert general == [0, 5, 7, 10]
    assert w.timeline.lr == [0.1] * 12
    assert w.timeline.measured == [s in (0, 5, 7, 10) for s in range(12)]


def test_a_watch_that_syncs_less_often_takes_the_general_path_every_step(monkeypatch):
    general, _ = _routed_steps(monkeypatch, steps=6, sync_every=2)
    assert general == list(range(6))


def test_a_nan_on_a_steady_step_stops_at_that_step_before_the_update():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.randn(8, 4)
    with pytest.raises(nw.TrainingStopped) as stopped:
        with nw.watch(model, opt, on_event=lambda e: None) as w:
            for step in range(12):
                opt.zero_grad()
                loss = model(x).pow(2).mean() * (float("nan") if step == 8 else 1.0)
                loss.backward()
                before = [p.detach().clone() for p in model.parameters()]
                opt.step()
                w.step(loss)
    assert stopped.value.event.step == 8 and 8 % w.norm_every != 0  # a steady step
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # no update made
