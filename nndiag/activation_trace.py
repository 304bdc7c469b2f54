"""One recording pass over the probe batches that the activation probes share.

``dead-neurons`` and ``saturation`` both need, for every place where an activation function runs,
per-unit counts over the probe batches; ``loss-setup`` needs the op that produced the model output.
:func:`activation_trace` computes all of it once per subject (``ctx.shared(("activations", n,
levels), ...)``): a fresh model, in train mode, under ``torch.no_grad``, watched by a
:class:`~nndiag.torchhooks.CallTracer` whose callbacks count the activation sites
(:mod:`nndiag.activation_sites`) and record what produced each tensor (:mod:`nndiag.provenance`).
This module runs the pass, on a fresh model, after a few training steps or on the default
initialisation, and counts the distinct input samples the probes saw.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from nndiag.activation_sites import Site, SiteRecorder
from nndiag.batches import batch_size, first_tensor, split_batch
from nndiag.provenance import OpRecord
from nndiag.torchhooks import CallTracer, train_mode

#: |pre-activation| levels at which saturation counts are kept. 5 is DeepDiagnosis' bar, 9.5 and
#: 17/23 are SageMaker Debugger's tanh and sigmoid bars (see docs/probes/saturation.md).
DEFAULT_LEVELS = (3.0, 5.0, 9.5, 17.0, 23.0)


@dataclass
class ActivationTrace:
    """The result of the shared pass."""

    sites: list[Site]
    samples: int  # samples seen (sum of batch sizes)
    batches: int
    distinct_samples: int | None  # distinct input samples among the first ones (None: unknown)
    levels: tuple[float, ...]
    output_op: OpRecord | None  # the op that produced the model output (first batch)
    output_chain: list[str]  # its description, last op first (e.g. ["Tensor.squeeze", "F.softmax"])
    fused_recurrent: list[str]  # LSTM/GRU module paths whose gates cannot be seen
    #: "path (F.scaled_dot_product_attention)" for every fused attention call: its softmax is unseen
    fused_attention: list[str] = field(default_factory=list)

    def by_family(self, family: str) -> list[Site]:
        """Sites of one family ("relu", "bounded", "softmax"), in order of first appearance."""
        return [s for s in self.sites if s.family == family]


def distinct_count(inputs: Any, cap: int = 4096) -> int | None:
    """Distinct samples among the first ``cap`` of the first input tensor (None when not a tensor)."""
    t = first_tensor(inputs)
    if t is None or t.dim() == 0:
        return None
    t = t[:cap].detach().reshape(t[:cap].shape[0], -1).cpu()
    if t.shape[0] == 0:
        return 0
    return int(torch.unique(t, dim=0).shape[0])


# ---- the pass --------------------------------------------------------------------------------
def _run_pass(bench: Any, model: torch.nn.Module, batches: list[Any],
              levels: tuple[float, ...]) -> ActivationTrace:
    """Record every activation site of ``model`` over ``batches`` (train mode, no grad)."""
    tracer = CallTracer(model)
    rec = SiteRecorder(model, tracer, tuple(sorted(set(levels))))
    tracer.before_call = rec.before_call
    tracer.on_call = rec.on_call
    tracer.on_module = rec.on_module
    samples = 0
    output_op: OpRecord | None = None
    output_chain: list[str] = []
    first_inputs = []
    with torch.no_grad(), train_mode(model, True), tracer.active():
        for i, batch in enumerate(batches):
            rec.new_forward()
            rec.ops.enabled = i == 0
            output = bench.forward(model, batch)
            if i == 0:
                with tracer.quiet():
                    out_t = first_tensor(output)
                    chain = rec.ops.chain(out_t)
                    output_chain = [r.name for r in chain]
                    output_op = rec.ops.last_op(out_t)
                    if output_op is not None:  # keep only what is needed, not the tensors
                        output_op = OpRecord(output_op.op, output_op.name, output_op.module_path,
                                             output_op.module_type, output_op.producer, None, None,
                                             output_op.dim, output_op.dim_size)
                rec.ops.clear()
            samples += batch_size(batch)
            with tracer.quiet():
                inputs, _ = split_batch(batch, bench.subject.data_source)
                first_inputs.append(first_tensor(inputs))
    distinct = None
    tensors = [t for t in first_inputs if t is not None and t.dim() > 0]
    if tensors and all(t.shape[1:] == tensors[0].shape[1:] for t in tensors):
        distinct = distinct_count(torch.cat(tensors))
    return ActivationTrace(rec.finished_sites(), samples, len(batches), distinct,
                           rec.levels, output_op, output_chain, rec.fused,
                           list(rec.fused_attention))


def record_activations(bench: Any, n_samples: int = 256,
                       levels: tuple[float, ...] = DEFAULT_LEVELS) -> ActivationTrace:
    """Run the pass on a fresh model (use :func:`activation_trace` from a probe: it caches)."""
    batches = bench.probe_batches(n_samples)
    return _run_pass(bench, bench.fresh_model(), batches, levels)


@dataclass
class StepsTrace:
    """The activation pass re-run after a few training steps of a fresh model."""

    trace: ActivationTrace
    steps: int  # steps actually run (fewer when the loss went non-finite)
    losses: list[float]


def record_after_steps(bench: Any, n_samples: int, steps: int,
                       levels: tuple[float, ...] = DEFAULT_LEVELS) -> StepsTrace:
    """Train a fresh model ``steps`` steps on the probe batches (the user's optimizer and step,
    cycling through the batches), then record the activation pass again on the same batches.

    Why: a unit that is inactive at initialisation only matters if it stays inactive once
    training moves the layers before it; most inactive units of a healthy default-initialised
    network come alive within a few steps (docs/probes/dead-neurons.md has the measurements).
    """
    batches = bench.probe_batches(n_samples)
    model = bench.fresh_model()
    optimizer = bench.make_optimizer(model)
    losses: list[float] = []
    for step in range(steps):
        loss = bench.train_one_step(model, optimizer, batches[step % len(batches)])
        losses.append(loss)
        if not math.isfinite(loss):
            break  # the weights are garbage now; what was seen so far is what there is
    return StepsTrace(_run_pass(bench, model, batches, levels), len(losses), losses)


def record_default_init(bench: Any, n_samples: int,
                        levels: tuple[float, ...] = DEFAULT_LEVELS) -> ActivationTrace:
    """The activation pass on the same architecture with PyTorch's default initialisation
    (``reset_parameters()`` of every module that has one): the baseline that tells a custom
    init's effect from the architecture's."""
    model = bench.fresh_model()
    with torch.no_grad():
        for m in model.modules():
            reset = getattr(m, "reset_parameters", None)
            if callable(reset):
                reset()
    return _run_pass(bench, model, bench.probe_batches(n_samples), levels)


def activations_after_steps(ctx: Any, n_samples: int, steps: int,
                            levels: tuple[float, ...] = DEFAULT_LEVELS) -> StepsTrace:
    """:func:`record_after_steps` for this subject, computed once per (samples, steps, levels)."""
    levels = tuple(sorted(set(levels)))
    return ctx.shared(("activations-after-steps", n_samples, steps, levels),
                      lambda: record_after_steps(ctx.bench, n_samples, steps, levels))


def default_init_activations(ctx: Any, n_samples: int,
                             levels: tuple[float, ...] = DEFAULT_LEVELS) -> ActivationTrace:
    """:func:`record_default_init` for this subject, computed once per (samples, levels)."""
    levels = tuple(sorted(set(levels)))
    return ctx.shared(("activations-default-init", n_samples, levels),
                      lambda: record_default_init(ctx.bench, n_samples, levels))


def inputs_unavailable(ctx: Any) -> str:
    """Why the model's inputs cannot be taken apart from the batch ('' when they can).

    Batches that are not (inputs, targets) pairs are allowed with the file's own step; the
    activation pass needs the inputs alone to call the model, so its probes then skip.
    """
    from nndiag.errors import SubjectError

    try:
        split_batch(ctx.bench.first_batch(), ctx.subject.data_source)
    except SubjectError as exc:
        if ctx.subject.training_step is None and ctx.subject.train_step is None:
            return ""  # no own step: the error is the user's to fix, raised by the pass itself
        return (f"{exc.message} The activation pass calls the model on the inputs alone, so it "
                "cannot run on these batches.")
    return ""


def trace_or_skip(ctx: Any, out: Any, n_samples: int = 256,
                  levels: tuple[float, ...] = DEFAULT_LEVELS) -> ActivationTrace:
    """:func:`activation_trace`, or ``out.skip`` with the reason when the file's own step calls
    the model in a way the pass cannot (dict batches; a ``forward`` that needs more than the
    batch's inputs, e.g. an LM's hidden state): an error there is not the user's mistake."""
    from nndiag.errors import SubjectError

    why = inputs_unavailable(ctx)
    if why:
        out.skip(why)
    try:
        return activation_trace(ctx, n_samples, levels)
    except SubjectError as exc:
        if ctx.subject.training_step is None and ctx.subject.train_step is None:
            raise
        own = "train_step" if ctx.subject.train_step is not None else "training_step"
        out.skip(f"{exc.message} The activation pass calls the model on the batch's inputs alone; "
                 f"your {own} calls it its own way, so the pass cannot run.")


def activation_trace(ctx: Any, n_samples: int = 256,
                     levels: tuple[float, ...] = DEFAULT_LEVELS) -> ActivationTrace:
    """The shared activation pass for this subject: the planned pass over ``n_samples`` samples
    (nndiag.passes), its levels the union of every probe's, computed once per check."""
    from nndiag.passes import ActivationPass

    plan = getattr(ctx, "plan", None)
    need = ActivationPass(n_samples, tuple(sorted(set(levels))))
    levels = (plan.covering(need) if plan is not None else need).levels
    return ctx.shared(("activations", n_samples, levels),
                      lambda: record_activations(ctx.bench, n_samples, levels))
