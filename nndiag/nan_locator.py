"""Finding the producer of the first NaN/Inf: replay the failing step under full instrumentation.

The shared training pass (:mod:`nndiag.training_trace`) only notices *that* the loss or a gradient
went non-finite at step k. Here a fresh model is rebuilt under the same seed, steps 0..k-1 are
replayed plainly (CPU training is deterministic for a fixed seed), and step k runs under a
:class:`~nndiag.torchhooks.CallTracer` that checks every op: the first call whose floating-point
inputs were all finite and whose output is not is the *producer* (not a mere propagator), reported
with the module it ran in — including functional calls inside a module's ``forward``. For
gradients, parameter post-accumulate hooks give the order in which gradients were finished during
backward, so the first non-finite one is the one nearest the loss.

Two causes are named because their fix is not the usual one (``docs/mixed-precision.md``): a
float16 op whose finite inputs give a result beyond 65504 (recomputed in float32 to tell an
overflow from a log(0)), and float16 weights that an optimizer with an epsilon that rounds to 0
in float16 (Adam's 1e-8) made NaN/Inf.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nndiag.passes import TRAINING_SAMPLES
from nndiag.precision import FP16_MAX, half_eps_groups
from nndiag.seeding import fork_seeded
from nndiag.workbench import Workbench
from nndiag.batches import iter_tensors
from nndiag.torchhooks import CallInfo, CallTracer, all_finite, module_label
from nndiag.training_trace import NonFinite, check_params


@dataclass
class Producer:
    """The op or parameter that produced the first non-finite value."""

    stage: str  # parameters | forward | loss | gradients
    where: str  # "features.3 (Conv2d)", "<outside the model>", or a parameter name
    op: str  # "torch.log", "F.conv2d", or "" when unknown
    detail: str
    hint: str = ""  # the fix when the cause is known (fp16 overflow, optimizer eps in fp16)


FP16_OVERFLOW_HINT = ("values beyond 65504 do not fit in float16: run under bf16 (--autocast bf16, "
                      "torch.autocast(dtype=torch.bfloat16), float32's range) or scale the values "
                      "down (normalised inputs, a smaller init; a GradScaler scales gradients only)")


class _FirstNonFinite:
    """Tracer callbacks that remember the first op with finite inputs and a non-finite output."""

    def __init__(self, device_type: str = "cpu") -> None:
        self.device_type = device_type
        self.inputs_finite = True
        self.found: CallInfo | None = None
        self.overflow: float | None = None  # the float32 peak when ``found`` is an fp16 overflow
        self.module_found: tuple[str, torch.nn.Module] | None = None

    def before(self, func, args, kwargs, path, module) -> None:
        if self.found is None:
            self.inputs_finite = all_finite(args) and all_finite(kwargs)

    def after(self, info: CallInfo) -> None:
        if self.found is None and self.inputs_finite and not all_finite(info.output):
            self.found = info
            self.overflow = fp16_overflow(info, self.device_type)  # now: later ops may change the inputs

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
            return Producer("parameters", stale.where, "", stale.detail,
                            _eps_hint(optimizer, model, stale.where))
        return _instrumented_step(bench, model, optimizer, batch)


def _instrumented_step(bench: Workbench, model, optimizer, batch) -> Producer | None:
    watcher = _FirstNonFinite(bench.device.type)
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
        if watcher.overflow is not None:
            return Producer(stage, info.where, info.name, f"fp16 overflow in {info.where}: max finite "
                            f"fp16 is {FP16_MAX:.0f}; {info.name} reaches {watcher.overflow:.3g} in "
                            "float32", FP16_OVERFLOW_HINT)
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


_CASTS = {"to", "half", "type", "_to_copy"}


def fp16_overflow(info: CallInfo, device_type: str = "cpu") -> float | None:
    """The largest |value| ``info``'s call reaches in float32, when its float16 output holds Inf
    only because the result exceeds 65504 (float16's largest finite value); None otherwise.

    The call is recomputed on float32 copies of its inputs, autocast off: finite there and beyond
    65504 is an overflow (a log(0) or a 0/0 stays non-finite in float32). A cast to float16 is
    an overflow when its input is finite and beyond 65504. In-place ops are not recomputed (their
    inputs are already overwritten)."""
    from torch.utils._pytree import tree_map

    outs = [t for t in iter_tensors(info.output) if t.dtype == torch.float16]
    if not any(bool(torch.isinf(t).any()) for t in outs) or info.op.endswith("_"):
        return None
    if info.op in _CASTS:
        refs = [t for t in iter_tensors(info.args) if t.is_floating_point()]
    else:
        def up(x):
            return x.detach().float() if isinstance(x, torch.Tensor) and x.is_floating_point() else x

        try:
            with torch.no_grad(), torch.autocast(device_type, enabled=False):
                ref = info.func(*tree_map(up, info.args), **tree_map(up, info.kwargs))
        except Exception:  # noqa: BLE001 - a call that will not run in float32 is not named
            return None
        refs = [t for t in iter_tensors(ref) if t.is_floating_point() and t.numel()]
    if not refs or not all(bool(torch.isfinite(t).all()) for t in refs):
        return None
    peak = max(float(t.detach().abs().max()) for t in refs)
    return peak if peak > FP16_MAX else None


def _eps_hint(optimizer, model: torch.nn.Module, where: str) -> str:
    """The fix when the NaN/Inf parameter ``where`` is float16 and its optimizer's eps rounds to 0
    in float16 (Adam's default 1e-8): the update divides by sqrt(v) + 0, which is 0 wherever the
    gradient's square underflows; "" otherwise."""
    param = dict(model.named_parameters()).get(where)
    if param is None or param.dtype != torch.float16:
        return ""
    eps = next((g["eps"] for g in half_eps_groups(optimizer) if any(p is param for p in g["params"])), None)
    if eps is None:
        return ""
    return (f"{type(optimizer).__name__}'s eps={eps:g} rounds to 0 in float16, so its update divides by "
            "sqrt(v) + 0 = 0 where the squared gradient underflows: use eps=1e-4 with float16 "
            "weights, or keep float32 weights and train under torch.autocast")
