"""The shared training pass behind the ``nan`` and ``gradients`` probes.

A fresh model trains for a few steps on the probe batches, exactly as the user's code would, while
recording what both probes need: the loss, per-parameter gradient statistics and update sizes for
the first steps, and a cheap finiteness check of inputs, parameters, loss and gradients at every
step. Watching every op is expensive (``detect_anomaly`` costs 2.5-3x, Lightning issues
https://github.com/Lightning-AI/pytorch-lightning/issues/12344 and
https://github.com/Lightning-AI/pytorch-lightning/issues/17359), so the pass runs plain; only
when something turns non-finite does :mod:`nndiag.nan_locator` rebuild the model, replay up to
that step and run that one step under full instrumentation. A healthy run therefore pays for one
extra gradient-norm kernel per step and nothing more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from nndiag.batches import iter_tensors, split_batch
from nndiag.errors import SubjectError
from nndiag.passes import TRAINING_SAMPLES, TrainingPass
from nndiag.workbench import Workbench
from nndiag.torchhooks import all_finite, count_non_finite


@dataclass
class ParamStats:
    """Gradient statistics of one parameter at one step (None grad: ``has_grad`` False)."""

    has_grad: bool
    grad_norm: float = 0.0
    mean_abs_grad: float = 0.0
    max_abs_grad: float = 0.0
    weight_norm: float = 0.0
    update_norm: float = 0.0  # |w_after - w_before| of the optimizer step
    lr: float | None = None


@dataclass
class NonFinite:
    """Where a non-finite value first appeared: ``stage`` is one of inputs, targets, parameters,
    forward, loss, gradients; ``where`` names the module/parameter; ``step`` counts from 0."""

    step: int
    stage: str
    where: str
    detail: str


@dataclass
class TrainingTrace:
    """What the shared pass saw."""

    steps_run: int
    losses: list[float] = field(default_factory=list)
    stats: list[dict[str, ParamStats]] = field(default_factory=list)  # first ``stats_steps`` steps
    param_names: list[str] = field(default_factory=list)  # trainable parameters, model order
    param_ndims: dict[str, int] = field(default_factory=dict)  # their number of dimensions
    param_numels: dict[str, int] = field(default_factory=dict)  # their number of elements
    optimizer: str = ""  # the optimizer's class name (LBFGS steps are whole line searches)
    non_finite: NonFinite | None = None
    own_step: bool = False  # the user's train_step did the updates

    def cut(self, steps: int, stats_steps: int) -> "TrainingTrace":
        """The trace a run of only ``steps`` steps with ``stats_steps`` of statistics would have
        given: the first steps of a longer run are the same steps (same seed, same batches)."""
        import dataclasses

        ended = self.non_finite if self.non_finite is not None and self.non_finite.step < steps else None
        return dataclasses.replace(self, steps_run=min(self.steps_run, steps), losses=self.losses[:steps],
                                   stats=self.stats[: min(stats_steps, steps)], non_finite=ended)


def _lr_of(optimizer: torch.optim.Optimizer) -> dict[int, float]:
    out = {}
    for group in optimizer.param_groups:
        lr = group.get("lr")
        for p in group["params"]:
            out[id(p)] = float(lr) if isinstance(lr, (int, float, torch.Tensor)) else None
    return out


def _check_batch(batch: Any, step: int, source: str) -> NonFinite | None:
    try:
        inputs, targets = split_batch(batch, source)
    except SubjectError:
        inputs, targets = batch, None
    for stage, part in (("inputs", inputs), ("targets", targets)):
        if part is not None and not all_finite(part):
            count = count_non_finite(part)
            return NonFinite(step, stage, stage, f"{count} non-finite value(s) in the batch {stage}")
    return None


def _max_abs_finite(tensors: list[torch.Tensor]) -> bool:
    """True when every tensor is finite: one fused max-abs per tensor and a single sync.

    Max-abs, not the L2 norm: the L2 norm of finite values near 1e37 overflows to Inf (a false
    alarm), while max |x| is finite exactly when every element is.
    """
    tensors = [t.detach() for t in tensors if t.numel()]
    if not tensors:
        return True
    if hasattr(torch, "_foreach_norm"):
        norms = torch._foreach_norm(tensors, ord=float("inf"))
    else:  # pragma: no cover - very old torch
        norms = [t.abs().max() for t in tensors]
    return bool(torch.isfinite(torch.stack([n.float() for n in norms])).all())


def check_params(model: torch.nn.Module, step: int) -> NonFinite | None:
    named = [(n, p) for n, p in model.named_parameters() if p.is_floating_point()]
    if _max_abs_finite([p for _, p in named]):
        return None
    for name, p in named:  # only on failure: find which one
        if not bool(torch.isfinite(p.detach()).all()):
            when = "at initialisation" if step == 0 else f"after {step} update(s)"
            return NonFinite(step, "parameters", name, f"parameter {name} holds NaN/Inf {when}")
    return None


def run_training_trace(bench: Workbench, steps: int, stats_steps: int,
                       samples: int = TRAINING_SAMPLES) -> TrainingTrace:
    """Train a fresh model for ``steps`` steps; full gradient statistics for the first ``stats_steps``.

    Stops at the first non-finite input, parameter, loss or gradient, recording where.
    """
    model = bench.fresh_model()
    named = bench.trainable_parameters(model)
    optimizer = bench.make_optimizer(model)
    batches = bench.probe_batches(samples)  # the same batches whatever other probes fetched
    optimizer_name = type(optimizer).__name__
    trace = TrainingTrace(0, param_names=[n for n, _ in named], own_step=bench.has_own_step,
                          param_ndims={n: p.dim() for n, p in named}, optimizer=optimizer_name,
                          param_numels={n: p.numel() for n, p in named})
    source = bench.subject.data_source
    for step in range(steps):
        batch = batches[step % len(batches)]
        # Batches are reused cyclically: check each one's values the first time it is used only.
        # Parameters are checked at initialisation here, and after updates only by the replay of a
        # step whose loss or gradient went non-finite (nan_locator): a healthy run pays nothing.
        problem = (_check_batch(batch, step, source) if step < len(batches) else None) \
            or (check_params(model, step) if step == 0 else None)
        if problem is not None:
            trace.non_finite = problem
            break
        want_stats = step < stats_steps
        before = [p.detach().clone() for _, p in named] if want_stats else None
        loss, grads_finite = _one_step(bench, model, optimizer, batch)
        trace.steps_run = step + 1
        trace.losses.append(loss)
        if want_stats:
            trace.stats.append(_param_stats(named, before, _lr_of(optimizer)))
        if not math.isfinite(loss):
            trace.non_finite = NonFinite(step, "loss", "", f"the loss is {loss}")
            break
        if not grads_finite:
            trace.non_finite = NonFinite(step, "gradients", "", "a gradient holds NaN/Inf")
            break
    return trace


def _one_step(bench: Workbench, model, optimizer, batch) -> tuple[float, bool]:
    """One update; returns the loss and whether every gradient was finite.

    With nndiag's own step the gradients are checked before ``optimizer.step()`` so that a
    non-finite gradient never reaches the weights; a user ``train_step`` is checked after.
    """
    result = bench.step(model, optimizer, batch, guard=_grads_finite)
    return result.loss, bool(result.grads_finite)


def _grads_finite(model: torch.nn.Module) -> bool:
    return _max_abs_finite([p.grad for p in model.parameters() if p.grad is not None])


def _param_stats(named, before, lrs) -> dict[str, ParamStats]:
    out = {}
    for (name, p), old in zip(named, before):
        w = p.detach()
        # float64: float32 L2 norms overflow to Inf for large but finite values (>~1e19 per element).
        stats = ParamStats(has_grad=p.grad is not None, weight_norm=float(old.double().norm()),
                           update_norm=float((w.double() - old.double()).norm()), lr=lrs.get(id(p)))
        if p.grad is not None:
            g = p.grad.detach().double()
            stats.grad_norm = float(g.norm())
            stats.mean_abs_grad = float(g.abs().mean()) if g.numel() else 0.0
            stats.max_abs_grad = float(g.abs().max()) if g.numel() else 0.0
        out[name] = stats
    return out


def shared_training_trace(ctx, steps: int, stats_steps: int) -> TrainingTrace:
    """The trace for this subject: the planned training pass (nndiag.passes), computed once for
    every probe of the check, cut back to the ``steps`` and ``stats_steps`` asked for."""
    plan = getattr(ctx, "plan", None)
    need = TrainingPass(steps, stats_steps)
    run = plan.covering(need) if plan is not None else need
    trace = ctx.shared(("training_trace", run.steps, run.stats_steps, run.samples),
                       lambda: run_training_trace(ctx.bench, run.steps, run.stats_steps, run.samples))
    return trace.cut(steps, stats_steps)
