"""The watch's host reads happen only at its sync points, checked on the CPU.

On CUDA every read of a device value by the host (``float(t)``, ``t.item()``, ``bool(t)``,
``t.tolist()``, ``t.numpy()``, ``t.cpu()``) waits for the device: a sync. The watch promises one per
log interval in steady state (issue 12; the GPU twin of this test, tests/test_gpu.py, counts real
syncs with ``torch.cuda.set_sync_debug_mode``). On the CPU the same reads can be counted: a
dispatch mode sees every ``aten._local_scalar_dense`` (what ``float``/``item``/``bool`` call), and
``tolist``/``numpy``/``cpu`` are wrapped. With ``sync_every=log_every`` and ``norm_every=1`` (the
CUDA settings) the watch must read nothing on a step that is not a log interval's last, sample
steps included.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode

import nndiag

LOG_EVERY, SAMPLE_EVERY, STEPS = 10, 20, 60


class HostReads(TorchDispatchMode):
    """Counts the host reads of tensor values while active."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.fixture
def counted_reads(monkeypatch):
    """A HostReads whose count also takes tolist/numpy/cpu calls on any tensor."""
    reads = HostReads()
    for name in ("tolist", "numpy", "cpu"):
        original = getattr(torch.Tensor, name)

        def counting(self, *a, _original=original, **k):
            if reads.active:
                reads.count += 1
            return _original(self, *a, **k)

        monkeypatch.setattr(torch.Tensor, name, counting)
    reads.active = False
    return reads


def _loop(reads: HostReads, watch_kwargs: dict | None, seed: int) -> list[int]:
    """Host reads per step of a small MLP's training, optionally watched."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 4))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)  # plain SGD reads nothing on the host
    xs, ys = torch.randn(STEPS, 16, 16), torch.randint(0, 4, (STEPS, 16))
    per_step = []
    w = nndiag.watch(model, opt, policy="report", **watch_kwargs).__enter__() if watch_kwargs else None
    try:
        for i in range(STEPS):
            before = reads.count
            reads.active = True
            with reads:
                opt.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(model(xs[i]), ys[i])
                loss.backward()
                opt.step()
                if w is not None:
                    w.step(loss.detach())
            reads.active = False
            per_step.append(reads.count - before)
    finally:
        if w is not None:
            w.__exit__(None, None, None)
    return per_step


def test_the_plain_loop_reads_nothing(counted_reads):
    """The control: the loop alone makes no host read, so every read counted below is the watch's."""
    assert _loop(counted_reads, None, 0) == [0] * STEPS


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_watch_reads_the_host_only_on_the_last_step_of_a_log_interval(counted_reads, seed):
    kw = {"sync_every": LOG_EVERY, "log_every": LOG_EVERY, "sample_every": SAMPLE_EVERY,
          "norm_every": 1}
    per_step = _loop(counted_reads, kw, seed)
    off = {s: n for s, n in enumerate(per_step) if n and (s + 1) % LOG_EVERY}
    assert not off, f"host reads on steps that are not sync points (step: reads): {off}"
    # the flushes do read (the test can see reads), and sample steps (0, 20, 40) add none of their own
    assert all(per_step[s] > 0 for s in range(LOG_EVERY - 1, STEPS, LOG_EVERY))


def test_samples_read_at_the_flush_hold_the_same_numbers():
    """Deferring the sample reads to the flush changes no number: the watched run's dead fractions
    and update ratios equal a plain-PyTorch re-computation on the same sample steps."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    xs, ys = torch.randn(30, 12, 8), torch.randint(0, 3, (30, 12))
    expect_dead, expect_ratio = {}, {}
    with nndiag.watch(model, opt, policy="report", log_every=10, sample_every=10) as w:
        for i in range(30):
            opt.zero_grad()
            if i % 10 == 0:  # naive: the hidden ReLU's inputs, and the first layer's weight
                pre = model[0](xs[i]).detach()
                expect_dead[i] = float(1.0 - (pre > 0).any(0).float().mean())
                before = [p.detach().clone() for p in model[0].parameters()]
            loss = nn.functional.cross_entropy(model(xs[i]), ys[i])
            loss.backward()
            opt.step()
            if i % 10 == 0:  # the layer's ratio pools its weight and bias
                change = sum(float((p.detach() - b).pow(2).sum()) for p, b in zip(model[0].parameters(), before))
                size = sum(float(b.pow(2).sum()) for b in before)
                expect_ratio[i] = (change / size) ** 0.5
            w.step(loss.detach())
    tl = w.timeline
    assert tl.samples == [0, 10, 20]
    (site,) = [k for k in tl.dead]
    assert tl.dead[site] == pytest.approx([expect_dead[s] for s in tl.samples], abs=1e-7)
    assert tl.update_ratio["0"] == pytest.approx([expect_ratio[s] for s in tl.samples], rel=1e-5)
