"""Workbench.step: the one training step every probe and pass uses (nndiag's own zero_grad/loss/
backward/step, or the user's train_step as written), with an optional guard that keeps a
non-finite gradient from reaching the weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from nndiag.subject import Subject  # noqa: E402
from nndiag.workbench import StepResult, Workbench  # noqa: E402

BATCH = (torch.randn(8, 4), torch.randint(0, 2, (8,)))


def _bench(**kw):
    kw.setdefault("loss_fn", nn.CrossEntropyLoss())
    subject = Subject("t", model_factory=lambda: nn.Linear(4, 2), batches=lambda: [BATCH], **kw)
    return Workbench(subject, seed=0)


def _weights(model):
    return [p.detach().clone() for p in model.parameters()]


def test_plain_step_updates_and_matches_a_hand_written_one():
    bench = _bench()
    model = bench.fresh_model()
    twin = bench.fresh_model()
    opt, twin_opt = torch.optim.SGD(model.parameters(), lr=0.1), torch.optim.SGD(twin.parameters(), lr=0.1)
    result = bench.step(model, opt, BATCH, keep_output=True)
    assert isinstance(result, StepResult) and result.grads_finite is None
    twin_opt.zero_grad()
    out = twin(BATCH[0])
    loss = nn.CrossEntropyLoss()(out, BATCH[1])
    loss.backward()
    twin_opt.step()
    assert result.loss == pytest.approx(float(loss)) and torch.allclose(result.output, out)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    assert bench.train_one_step(model, opt, BATCH) == pytest.approx(float(bench.compute_loss(twin, BATCH)))


def test_a_failing_guard_keeps_the_update_out():
    bench = _bench()
    model = bench.fresh_model()
    before = _weights(model)
    result = bench.step(model, torch.optim.SGD(model.parameters(), lr=0.1), BATCH, guard=lambda m: False)
    assert result.grads_finite is False
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_a_non_finite_loss_is_not_backpropagated_under_a_guard():
    bench = _bench(loss_fn=lambda out, y: out.sum() * float("nan"))
    model = bench.fresh_model()
    result = bench.step(model, torch.optim.SGD(model.parameters(), lr=0.1), BATCH, guard=lambda m: True)
    assert result.loss != result.loss and all(p.grad is None for p in model.parameters())


def test_user_train_step_runs_as_written_and_is_guarded_after():
    calls = []

    def train_step(model, optimizer, batch):
        calls.append(len(batch))
        return 1.5

    bench = _bench(train_step=train_step)
    assert bench.uses_train_step and bench.has_own_step
    model = bench.fresh_model()
    result = bench.step(model, torch.optim.SGD(model.parameters(), lr=0.1), BATCH, guard=lambda m: True)
    assert calls == [2] and result == StepResult(1.5, None, True)
