"""Finding the producer of the first NaN/Inf: replay the failing step under full instrumentation.

The shared training pass (:mod:`nndiag.training_trace`) only notices *that* the loss or a gradient
went non-finite at step k. Here a fresh model is rebuilt under the same seed, steps 0..k-1 are
replayed plainly (CPU training is deterministic for a fixed seed), and step k runs under a
:class:`~nndiag.torchhooks.CallTracer` that checks every op: the first call whose floating-point
inputs were all finite and whose output is not is the *producer* (not a mere propagator), reported
with the module it ran in — including functional calls inside a module's ``forward``. For
gradients, parameter post-accumulate hooks give the order in which gradients were finished during
backward, so the first non-finite one is the one nearest the loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nndiag.passes import TRAINING_SAMPLES
from nndiag.seeding import fork_seeded
from nndiag.workbench import Workbench
from nndiag.torchhooks import CallInfo, CallTracer, all_finite, module_label
from nndiag.training_trace import NonFinite, check_params


@dataclass
class Producer:
    """The op or parameter that produced the first non-finite value."""

    stage: str  # parameters | forward | loss | gradients
    where: str  # "features.3 (Conv2d)", "<outside the model>", or a parameter name
    op: str  # "torch.log", "F.conv2d", or "" when unknown
    detail: str


class _FirstNonFinite:
    """Tracer callbacks that remember the first op with finite inputs and a non-finite output."""

    def __init__(self) -> None:
        self.inputs_finite = True
        self.found: CallInfo | None = None
        self.module_found: tuple[str, torch.nn.Module] | None = None

    def before(self, func, args, kwargs, path, module) -> None:
        if self.found is None:
            self.inputs_finite = all_finite(args) and all_finite(kwargs)

    def after(self, info: CallInfo) -> None:
        if self.found is None and self.inputs_finite and not all_finite(info.output):
            self.found = info

    def module(self, path, module, inputs, output) -> None:
        # A module-level producer, for ops the function mode cannot see (custom C++ extensions).
        if self.module_found is None and all_finite(inputs) and not all_finite(output):
            self.module_found = (path, module)


def locate(bench: Workbench, event: NonFinite, batches: list | None = None) -> Producer | None:
    """Replay to ``event.step`` and return the producer, or None if the replay did not reproduce it.

    ``batches`` are the batches the run cycled over: the probe batches (the shared training pass)
    unless another probe's run is replayed (the overfit run's one batch).
    """
    if event.stage not in ("loss", "gradients", "forward"):
        return None
    with fork_seeded(bench.seed):
        model = bench.fresh_model()
        optimizer = bench.make_optimizer(model)
        batches = list(batches) if batches is not None else bench.probe_batches(TRAINING_SAMPLES)
        for step in range(event.step):
            bench.train_one_step(model, optimizer, batches[step % len(batches)])
        batch = batches[event.step % len(batches)]
        stale = check_params(model, event.step)  # an earlier update made a weight NaN/Inf
        if stale is not None:
            return Producer("parameters", stale.where, "", stale.detail)
        return _instrumented_step(bench, model, optimizer, batch)


def _instrumented_step(bench: Workbench, model, optimizer, batch) -> Producer | None:
    watcher = _FirstNonFinite()
    grad_order: list[tuple[str, bool]] = []
    handles = []
    for name, p in model.named_parameters():
        if p.requires_grad and hasattr(p, "register_post_accumulate_grad_hook"):
            handles.append(p.register_post_accumulate_grad_hook(
                lambda param, name=name: grad_order.append(
                    (name, bool(torch.isfinite(param.grad).all())))))
    tracer = CallTracer(model, before_call=watcher.before, on_call=watcher.after, on_module=watcher.module)
    try:
        with tracer.active():
            if bench.has_own_step:
                bench.train_one_step(model, optimizer, batch)
            else:
                optimizer.zero_grad(set_to_none=True)
                loss = bench.compute_loss(model, batch)
                if bool(torch.isfinite(loss.detach())):
                    bench.backward(loss)
    finally:
        for h in handles:
            h.remove()
    if watcher.found is not None:
        info = watcher.found
        stage = "forward" if info.module is not None else "loss"
        return Producer(stage, info.where, info.name, _describe(info))
    if watcher.module_found is not None:
        path, module = watcher.module_found
        return Producer("forward", module_label(path, module), "", "its output is not finite")
    bad = [name for name, ok in grad_order if not ok]
    if bad:
        return Producer("gradients", bad[0], "", f"its gradient is the first non-finite one "
                        f"computed in backward ({len(bad)} parameter(s) affected)")
    return None


def _describe(info: CallInfo) -> str:
    out = info.output
    kinds = []
    for t in (out if isinstance(out, (tuple, list)) else [out]):
        if isinstance(t, torch.Tensor) and t.is_floating_point():
            if bool(torch.isnan(t).any()):
                kinds.append("NaN")
            if bool(torch.isinf(t).any()):
                kinds.append("Inf")
    what = "/".join(dict.fromkeys(kinds)) or "non-finite values"
    return f"{info.name} turned finite inputs into {what}"
