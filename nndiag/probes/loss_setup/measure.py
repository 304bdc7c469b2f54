"""Measuring the loss as training computes it: every recognised loss call of the probe batches
on a fresh model, traced (train mode, dropout off, no grad), or through the user's own
``train_step``; the optimizer's step size on the side, for the summed-loss check."""

from __future__ import annotations

import inspect
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from nndiag.errors import SubjectError
from nndiag.probes.loss_setup.rules import LOSS_INPUT, loss_elements
from nndiag.provenance import POOLING, OpRecord, OpRecorder
from nndiag.torchhooks import CallInfo, CallTracer, train_mode


@dataclass
class LossCall:
    """One traced call of a recognised loss function."""

    op: str
    params: dict[str, Any]
    value: float
    input: torch.Tensor
    target: Any
    chain: list[OpRecord] = field(default_factory=list)
    deep_chain: list[OpRecord] = field(default_factory=list)  # also through pooling (POOLING)
    per_element: float = float("nan")  # the loss per element, whatever the reduction


@dataclass
class LossMeasurement:
    """What one measurement found: per probe batch, the recognised loss calls (with the op chain
    on the first batch), the loss the user's code returned, and the optimizer's step size."""

    per_batch: list[list[LossCall]]
    user_losses: list[float]
    optimizer_name: str | None
    step_size: float | None  # lr / (1 - momentum); None when the optimizer has no numeric lr
    eval_fallback: bool = False  # measured in eval mode: the model refused train mode
    batches: list[Any] = field(default_factory=list)  # the probe batches the calls were made on


def single_call(per_batch: list[list[LossCall]]) -> LossCall | None:
    """The loss call when every batch makes exactly one call of the same loss, else None."""
    if not per_batch or any(len(b) != 1 for b in per_batch) \
            or len({b[0].op for b in per_batch}) != 1:
        return None  # several loss terms: their sum has no single expected value
    return per_batch[0][0]


def measure_losses(bench: Any, samples: int) -> LossMeasurement:
    """For each probe batch, the recognised loss calls (with the op chain on the first batch).

    The loss is measured as training computes it: in train mode, so that fresh BatchNorm
    layers normalise with the batch statistics (in eval mode their running statistics are
    still 0/1 and a ResNet's initial loss reads 7x ln 10 instead of 1.5x), with dropout
    modules off. A file with its own ``train_step`` is measured through it, on one fresh
    model and its first batch: the step decides what the loss is called on (a GAN builds its
    own real/fake labels), so ``loss_fn`` is never called on the batch's targets by nndiag.
    """
    s = bench.subject
    own_step = s.train_step is not None
    batches = bench.probe_batches(samples)
    if own_step:
        batches = batches[:1]  # one real update of a fresh model: only the first loss is initial
    try:
        return _trace_batches(bench, batches, own_step, train=True)
    except SubjectError:
        if own_step:
            raise
        # e.g. BatchNorm on a batch of one sample refuses train mode: measure in eval mode.
        measured = _trace_batches(bench, batches, own_step, train=False)
        measured.eval_fallback = True
        return measured


def _trace_batches(bench: Any, batches: list[Any], own_step: bool, train: bool) -> LossMeasurement:
    model = bench.fresh_model()
    tracer = CallTracer(model)
    recorder = OpRecorder(model)
    calls: list[LossCall] = []

    def on_call(info: CallInfo) -> None:
        recorder.on_call(info)
        if info.op in LOSS_INPUT:
            call = loss_call(info)
            if call is not None:
                if recorder.enabled:
                    call.chain = recorder.chain(call.input)
                    call.deep_chain = recorder.chain(call.input, through=POOLING)
                calls.append(call)

    tracer.on_call = on_call
    result: list[list[LossCall]] = []
    user_losses: list[float] = []
    try:
        optimizer = bench.make_optimizer(model)
        optimizer_name = type(optimizer).__name__
        group = optimizer.param_groups[0] if optimizer.param_groups else {}
        lr, momentum = group.get("lr"), group.get("momentum", 0.0)
        step_size = (float(lr) / max(1.0 - float(momentum or 0.0), 1e-3)
                     if isinstance(lr, (int, float)) else None)
    except SubjectError:
        optimizer, optimizer_name, step_size = None, None, None
    with train_mode(model, train), dropout_off(model, own_step), tracer.active():
        for i, batch in enumerate(batches):
            recorder.enabled = i == 0
            calls.clear()
            if own_step:
                user = bench.train_one_step(model, optimizer or bench.make_optimizer(model),
                                            batch)
            else:
                with torch.no_grad():
                    user = float(bench.compute_loss(model, batch).detach())
            with tracer.quiet():
                user_losses.append(user)
                for c in calls:  # keep what the checks need, detached, on the CPU
                    c.input = c.input.detach()
                    for r in c.chain + c.deep_chain:
                        r.output = None
                result.append(list(calls))
            recorder.clear()
    return LossMeasurement(result, user_losses, optimizer_name, step_size, batches=list(batches))


def loss_call(info: CallInfo) -> LossCall | None:
    """The :class:`LossCall` of one traced loss function call (None when its input or output is
    not a tensor); ``per_element`` undoes a 'sum' reduction."""
    try:
        bound = inspect.signature(info.func).bind_partial(*info.args, **info.kwargs)
        params = dict(bound.arguments)
    except (TypeError, ValueError):
        params = {}
    x = params.get("input", info.args[0] if info.args else None)
    target = params.get("target", info.args[1] if len(info.args) > 1 else None)
    if not isinstance(x, torch.Tensor) or not isinstance(info.output, torch.Tensor):
        return None
    value = float(info.output.detach().float().mean()) if info.output.numel() else float("nan")
    call = LossCall(info.op, params, value, x, target.detach() if isinstance(target, torch.Tensor)
                    else target)
    call.per_element = value
    if params.get("reduction") == "sum" and info.output.numel() == 1:
        call.per_element = value / max(loss_elements(info.op, x), 1)
    return call


@contextmanager
def dropout_off(model: torch.nn.Module, keep: bool):
    """Dropout modules in eval mode for the measurement (unless ``keep``: the user's own step)."""
    from torch.nn.modules.dropout import _DropoutNd

    flags = [] if keep else [(m, m.training) for m in model.modules() if isinstance(m, _DropoutNd)]
    for m, _ in flags:
        m.training = False
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag
