"""Naming the producer of a NaN/Inf found by the watch: replay the tripping step on a copy.

The every-step check only learns *that* the loss or a gradient went non-finite. The watch keeps a
reference to the inputs of the last training forward and the RNG state before it (no copy), and the
check runs before ``optimizer.step()``, so the weights are still those of the tripping forward. The
replay deep-copies the model (the user's model is never touched), restores the RNG state under a
fork (the user's RNG is unchanged afterwards), and reruns the forward under
:class:`~nndiag.torchhooks.CallTracer` with :mod:`nndiag.nan_locator`'s first-non-finite watcher:
the first op whose inputs were finite and whose output is not is the forward producer. When a loss
callable is known (the CLI, or ``w.replay_loss``) the backward runs too, with full backward hooks on
every module: the first module (in backward order) whose output gradient was finite and whose
input gradient is not is the backward producer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nndiag.nan_locator import _FirstNonFinite, _describe
from nndiag.torchhooks import (CallTracer, all_finite, count_non_finite, is_float_tensor, iter_tensors,
                               module_label, uncompiled)


@dataclass
class Captured:
    """What the replay needs of the last training forward: references, not copies."""

    args: tuple
    kwargs: dict
    rng: torch.Tensor | None
    cuda_rng: Any = None


@dataclass
class Producer:
    """Where the first non-finite value came from."""

    stage: str  # input | forward | loss | backward | gradients | parameters | unknown
    where: str
    detail: str


def _call(model: torch.nn.Module, cap: Captured) -> Any:
    return model(*cap.args, **cap.kwargs)


def replay(model: torch.nn.Module, cap: Captured | None,
           loss_of: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
           shared: tuple = ()) -> Producer | None:
    """Rerun the captured forward (and backward, with ``loss_of(model, output)``) on a copy;
    ``shared`` objects (a Lightning Trainer the module points to) are referenced, not copied."""
    model = uncompiled(model)  # torch.compile: replay the eager module (names without _orig_mod.)
    bad = [n for n, p in model.named_parameters() if not all_finite(p)]
    if bad:
        return Producer("parameters", bad[0], f"parameter {bad[0]} already holds NaN/Inf "
                        f"({len(bad)} parameter(s)): an earlier update or the initialisation put it there")
    if cap is None:
        return None
    bad_input = _non_finite_input(cap)
    if bad_input is not None:  # nothing in the model made it: the batch came in that way
        return bad_input
    twin = copy.deepcopy(model, {id(o): o for o in shared})
    _drop_watch_hooks(twin)
    devices = [torch.cuda.current_device()] if cap.cuda_rng is not None else []
    with torch.random.fork_rng(devices=devices):
        if cap.rng is not None:
            torch.set_rng_state(cap.rng)
        if cap.cuda_rng is not None:
            torch.cuda.set_rng_state(cap.cuda_rng)
        return _instrumented(twin, cap, loss_of)


def _non_finite_input(cap: Captured) -> Producer | None:
    """The batch itself holds NaN/Inf (a bad sample in the data): named before any replay, since
    every op downstream would only pass it on."""
    inputs = [(f"argument {i}", a) for i, a in enumerate(cap.args)]
    inputs += [(f"argument {k!r}", v) for k, v in cap.kwargs.items()]
    for label, value in inputs:
        bad = count_non_finite(value)
        if bad:
            total = sum(t.numel() for t in iter_tensors(value) if is_float_tensor(t))
            return Producer("input", "the batch", (
                f"{label} of the model's forward holds {bad} NaN/Inf of {total} values: "
                "the data came in non-finite, no layer produced it (check the dataset or "
                "its preprocessing for this batch)"))
    return None


def _instrumented(twin, cap, loss_of) -> Producer | None:
    watcher = _FirstNonFinite()
    tracer = CallTracer(twin, before_call=watcher.before, on_call=watcher.after,
                        on_module=watcher.module)
    found: list[tuple[str, torch.nn.Module]] = []
    # full backward hooks must be in place before the forward that builds the graph
    handles = _backward_hooks(twin, found) if loss_of is not None else []
    try:
        with tracer.active():
            output = _call(twin, cap)
        if watcher.found is not None:
            info = watcher.found
            return Producer("forward", info.where, _describe(info) + ", its inputs finite")
        if watcher.module_found is not None:
            path, module = watcher.module_found
            return Producer("forward", module_label(path, module),
                            "its output is not finite while its inputs are")
        if loss_of is None:
            return None
        loss = loss_of(twin, output)
        if not all_finite(loss):
            return Producer("loss", "loss", f"the loss is {float(loss.detach())} while the model's "
                            "output is finite: the loss function produced it")
        twin.zero_grad(set_to_none=True)
        loss.backward()
    finally:
        for h in handles:
            h.remove()
    if found:
        path, module = found[0]
        return Producer("backward", module_label(path, module),
                        "its input gradient is non-finite while its output gradient is finite")
    bad = [n for n, p in twin.named_parameters() if p.grad is not None and not all_finite(p.grad)]
    if bad:
        return Producer("gradients", bad[-1], f"{len(bad)} parameter gradient(s) non-finite")
    return None


def _backward_hooks(twin: torch.nn.Module, found: list) -> list:
    """Full backward hooks on the leaf modules, recording the first module (in backward order)
    whose output gradient is finite and whose input gradient is not."""
    def hook(path):
        def fn(module, grad_input, grad_output):
            if not found and all_finite(grad_output) and not all_finite(grad_input):
                found.append((path, module))
        return fn

    return [module.register_full_backward_hook(hook(path)) for path, module in twin.named_modules()
            if next(module.children(), None) is None]


def _drop_watch_hooks(twin: torch.nn.Module) -> None:
    """Remove the watch's own hooks from the copy (the user's hooks stay: they may be semantics)."""
    from nndiag.watch.events import WatchHook

    for module in twin.modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for key in [k for k, h in hooks.items() if isinstance(h, WatchHook)]:
                del hooks[key]
