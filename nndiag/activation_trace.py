"""One recording pass over the probe batches that the activation probes share.

``dead-neurons`` and ``saturation`` both need, for every place where an activation function runs,
per-unit counts over the probe batches; ``loss-setup`` needs the op that produced the model output.
:func:`activation_trace` computes all of it once per subject (``ctx.shared(("activations", n,
levels), ...)``): a fresh model, in train mode, under ``torch.no_grad``, watched by a
:class:`~nndiag.torchhooks.CallTracer`, so that module activations (``nn.ReLU``) and function calls
inside ``forward`` (``torch.relu``, ``F.relu``, ``x.relu()``, ``F.relu6``, ``torch.sigmoid``,
``F.softmax`` ...) are both seen. Only per-unit counters are kept, never whole tensors.

A *site* is one activation call: (module path where it ran, what produced its input, op name, call
index within one forward), so an activation called three times in a loop gives three sites. It is
named after the module that produced its input, e.g. ``fc1 -> relu`` or
``features.0 -> features.1 (ReLU)``.

A *unit* is a feature of a Linear output (last dimension), a channel of a convolution output
(dimension 1), a hidden unit of a recurrent layer (last dimension); every other position (sample,
pixel, time step) is an *observation* of that unit.

Recurrent layers: ``nn.RNN`` with ``nonlinearity="relu"``/``"tanh"`` is recorded from its output
(the top layer's hidden units). The gates of ``nn.LSTM``/``nn.GRU`` run inside one fused kernel and
cannot be seen; their paths are listed in :attr:`ActivationTrace.fused_recurrent`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from nndiag.batches import batch_size, first_tensor, split_batch
from nndiag.torchhooks import CallInfo, CallTracer, train_mode

#: Activation functions that zero (or nearly zero) their negative side: the dead-neurons family.
#: relu and relu6 give exactly zero gradient there; the others keep a small one ("leaky").
RELU_FAMILY = {"relu", "relu6", "leaky_relu", "rrelu", "elu", "selu", "celu", "gelu", "silu",
               "mish", "hardswish"}
#: Ops with a zero gradient for every negative input: a unit that never gets a positive input is dead.
HARD_ZERO = {"relu", "relu6"}
#: Bounded S-shaped activations: saturation family.
BOUNDED = {"sigmoid", "tanh"}
SOFTMAX = {"softmax", "log_softmax"}
WATCHED = RELU_FAMILY | BOUNDED | SOFTMAX
#: Fused attention kernels: their softmax runs inside one call that no hook can look into.
FUSED_ATTENTION = {"scaled_dot_product_attention", "multi_head_attention_forward",
                   "_native_multi_head_attention", "_transformer_encoder_layer_fwd"}

#: |pre-activation| levels at which saturation counts are kept. 5 is DeepDiagnosis' bar, 9.5 and
#: 17/23 are SageMaker Debugger's tanh and sigmoid bars (see docs/probes/saturation.md).
DEFAULT_LEVELS = (3.0, 5.0, 9.5, 17.0, 23.0)

#: Ops that only move, reshape, copy or randomly mask values: looking through them for what
#: produced a tensor ("the last op on the output").
PASSTHROUGH = {
    "view", "reshape", "flatten", "squeeze", "unsqueeze", "contiguous", "transpose", "permute",
    "t", "clone", "to", "float", "double", "half", "bfloat16", "type", "__getitem__", "select",
    "narrow", "expand", "expand_as", "view_as", "reshape_as", "unflatten", "detach", "cpu", "cuda",
    "dropout", "alpha_dropout", "feature_alpha_dropout", "dropout1d", "dropout2d", "dropout3d",
    "movedim", "swapaxes", "swapdims", "squeeze_", "unsqueeze_", "identity",
}
#: Ops that pool values over positions without changing their sign or range: a ReLU or sigmoid
#: behind a global average pool still bounds what comes out of the pool.
POOLING = {
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d", "avg_pool1d", "avg_pool2d",
    "avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices", "max_pool2d_with_indices",
    "max_pool3d_with_indices", "_max_pool1d", "_max_pool2d", "_max_pool3d", "mean", "nanmean",
    "amax", "amin",
}
_CHANNEL_FIRST = (
    torch.nn.modules.conv._ConvNd, torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.instancenorm._InstanceNorm, torch.nn.GroupNorm,
    torch.nn.modules.pooling._MaxPoolNd, torch.nn.modules.pooling._AvgPoolNd,
    torch.nn.modules.pooling._AdaptiveAvgPoolNd, torch.nn.modules.pooling._AdaptiveMaxPoolNd,
)


@dataclass
class Site:
    """Per-unit counters of one activation site over all probe batches."""

    label: str  # "fc1 -> relu", "features.0 -> features.1 (ReLU)", "fc1 -> relu #2"
    where: str  # module path for findings: the activation module, else the producer, else caller
    op: str  # relu, relu6, leaky_relu, ..., sigmoid, tanh, softmax, log_softmax
    module_path: str  # where the call ran ("" = the model's own forward)
    producer: str | None  # module (or site) that produced the input
    call_index: int  # 0 for the first call of this (module_path, producer, op) in a forward
    units: int  # units per observation (softmax: the size of the softmax dimension)
    unit_dim: int | None  # dimension holding the units (None: one unit, every element observed)
    observations: int = 0  # observations per unit (samples x positions)
    calls: int = 0  # how many forward calls contributed
    active: torch.Tensor | None = None  # relu family: per unit, observations with input > 0
    max_input: torch.Tensor | None = None  # relu family: per unit, largest input seen
    above: dict[float, torch.Tensor] = field(default_factory=dict)  # bounded: input > level
    below: dict[float, torch.Tensor] = field(default_factory=dict)  # bounded: input < -level
    rows: int = 0  # softmax: number of distributions computed
    rows_peaked: dict[float, int] = field(default_factory=dict)  # softmax: max prob > sigmoid(level)

    @property
    def family(self) -> str:
        """"relu", "bounded" or "softmax"."""
        if self.op in SOFTMAX:
            return "softmax"
        return "bounded" if self.op in BOUNDED else "relu"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (no per-unit arrays)."""
        return {"label": self.label, "where": self.where, "op": self.op, "units": self.units,
                "observations": self.observations, "calls": self.calls}


@dataclass
class OpRecord:
    """What produced one tensor during a traced forward: the op, where, and its first input."""

    op: str
    name: str
    module_path: str
    module_type: str
    producer: str | None
    input: Any  # the first tensor argument (kept alive so ids stay unique during the trace)
    output: Any
    dim: int | None = None  # softmax/log_softmax dimension
    dim_size: int | None = None

    def describe(self) -> str:
        """``F.softmax in sm (Softmax)``, ``torch.linear in fc3 (Linear)``, ``torch.relu on the
        output of fc2``."""
        if self.module_path:
            return f"{self.name} in {self.module_path} ({self.module_type})"
        if self.producer:
            return f"{self.name} on the output of {self.producer}"
        return f"{self.name} in the model's forward"


class OpRecorder:
    """Remembers, for every tensor produced while active, which op produced it.

    Used with a ``CallTracer(ops=None)``: ``on_call`` records each call's outputs. :meth:`chain`
    then walks back from a tensor through :data:`PASSTHROUGH` ops to the op that made its values.
    """

    def __init__(self, tracer_model: torch.nn.Module) -> None:
        self.records: dict[int, OpRecord] = {}
        self.enabled = True
        self._types = {p: type(m).__name__ for p, m in tracer_model.named_modules()}

    def on_call(self, info: CallInfo) -> None:
        """CallTracer callback: record the op that produced each output tensor."""
        if not self.enabled:
            return
        x = _first_arg(info.args, info.kwargs)
        dim = dim_size = None
        if info.op in SOFTMAX and isinstance(x, torch.Tensor):
            dim = softmax_dim(x, info.args, info.kwargs)
            dim_size = int(x.shape[dim]) if x.dim() else 1
        rec = OpRecord(info.op, info.name, info.module_path,
                       self._types.get(info.module_path, "?"), info.producer, x, info.output,
                       dim, dim_size)
        for t in _tensors(info.output):
            self.records[id(t)] = rec

    def lookup(self, t: Any) -> OpRecord | None:
        """The record of the op whose output is this very tensor, if any."""
        if not isinstance(t, torch.Tensor):
            return None
        rec = self.records.get(id(t))
        if rec is None or not any(o is t for o in _tensors(rec.output)):
            return None
        return rec

    def chain(self, t: Any, limit: int = 64, through: frozenset[str] | set[str] = frozenset()
              ) -> list[OpRecord]:
        """Ops that produced ``t``, last first, through passthrough ops (and the ``through`` ops,
        e.g. :data:`POOLING`), ending at the first other op."""
        out: list[OpRecord] = []
        for _ in range(limit):
            rec = self.lookup(t)
            if rec is None:
                break
            out.append(rec)
            if rec.op not in PASSTHROUGH and rec.op not in through:
                break
            t = rec.input
        return out

    def last_op(self, t: Any) -> OpRecord | None:
        """The first non-passthrough op behind ``t`` (None when it was not produced by a traced op)."""
        chain = self.chain(t)
        if chain and chain[-1].op not in PASSTHROUGH:
            return chain[-1]
        return None

    def clear(self) -> None:
        """Forget every record (drops the tensor references)."""
        self.records.clear()


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


# ---- helpers ---------------------------------------------------------------------------------
def _first_arg(args: tuple, kwargs: dict) -> Any:
    if args:
        return args[0]
    return kwargs.get("input", kwargs.get("self"))


def _tensors(obj: Any):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _tensors(v)


def softmax_dim(x: torch.Tensor, args: tuple, kwargs: dict) -> int:
    """The dimension a softmax/log_softmax call normalises over (torch's implicit rule for None)."""
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim is None:  # torch.nn.functional._get_softmax_dim: the legacy implicit choice
        dim = 0 if x.dim() in (0, 1, 3) else 1
    if isinstance(dim, str):  # named dimension
        dim = x.names.index(dim)
    return int(dim) % max(x.dim(), 1)


def unit_dim_for(x: torch.Tensor, producer_module: torch.nn.Module | None) -> int | None:
    """Which dimension of an activation holds the units (see the module docstring)."""
    if x.dim() <= 1:
        return None
    if x.dim() == 2:
        return 1
    if isinstance(producer_module, _CHANNEL_FIRST):
        return 1
    if isinstance(producer_module, (torch.nn.Linear, torch.nn.RNNBase, torch.nn.LayerNorm,
                                    torch.nn.Embedding)):
        return x.dim() - 1
    return 1 if x.dim() >= 4 else x.dim() - 1


def _as_units(x: torch.Tensor, unit_dim: int | None) -> torch.Tensor:
    """``x`` as a 2-D (observations, units) float tensor."""
    x = x.detach()
    if unit_dim is None:
        return x.reshape(-1, 1).float()
    return x.movedim(unit_dim, -1).reshape(-1, x.shape[unit_dim]).float()


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
class _Recorder:
    """CallTracer callbacks that update the site counters."""

    def __init__(self, model: torch.nn.Module, tracer: CallTracer, levels: tuple[float, ...]) -> None:
        self.model = model
        self.tracer = tracer
        self.levels = levels
        self.modules = dict(model.named_modules())
        self.sites: dict[tuple, Site] = {}
        self.order: list[tuple] = []
        self.call_counts: dict[tuple, int] = {}
        self.origin: dict[int, tuple[str, Any]] = {}  # id(tensor) -> (site label, tensor)
        self._last_site: Site | None = None
        self.ops = OpRecorder(model)
        self.fused: list[str] = [p for p, m in model.named_modules()
                                 if isinstance(m, (torch.nn.LSTM, torch.nn.GRU, torch.nn.LSTMCell,
                                                   torch.nn.GRUCell))]
        self.fused_attention: dict[str, None] = {}  # ordered set of "path (op)"

    def new_forward(self) -> None:
        self.call_counts.clear()
        self.origin.clear()

    # -- naming --
    def _producer_label(self, x: Any) -> str | None:
        prod = self.tracer.producer_of(x)
        if prod is not None:
            return prod or "<model>"
        entry = self.origin.get(id(x))
        if entry is not None and entry[1] is x:
            return entry[0]
        return None

    def _site(self, op: str, x: torch.Tensor, module_path: str, module: Any,
              producer: str | None, units_dim: int | None, units: int, key_extra: Any = None) -> Site:
        base = (module_path, producer, op, key_extra)
        index = self.call_counts.get(base, 0)
        self.call_counts[base] = index + 1
        key = base + (index,)
        site = self.sites.get(key)
        if site is None:
            in_act_module = (module is not None and module_path and not list(module.children())
                             and not list(module.parameters(recurse=False)))
            if in_act_module:
                own = f"{module_path} ({type(module).__name__})"
                if producer and producer in self.modules and producer.rsplit(".", 1)[-1].isdigit():
                    producer = f"{producer} ({type(self.modules[producer]).__name__})"
                label = f"{producer} -> {own}" if producer and producer != module_path else own
                where = module_path
            else:
                label = f"{producer} -> {op}" if producer else f"{module_path or '<model>'}: {op}"
                where = producer if producer and producer in self.modules else (module_path or "<model>")
            site = Site(label, where, op, module_path, producer, index, units, units_dim)
            self.sites[key] = site
            self.order.append(key)
        return site

    # -- callbacks --
    def before_call(self, func, args, kwargs, module_path, module) -> None:
        from nndiag.torchhooks import base_name

        op = base_name(func)
        self._last_site = None
        if op in FUSED_ATTENTION:
            from nndiag.torchhooks import function_name

            self.fused_attention.setdefault(f"{module_path or '<model>'} ({function_name(func)})")
            return
        if op not in WATCHED:
            return
        x = _first_arg(args, kwargs)
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() == 0:
            return
        producer = self._producer_label(x)
        self._record(op, x, args, kwargs, module_path, module, producer)

    def _record(self, op, x, args, kwargs, module_path, module, producer) -> None:
        prod_module = self.modules.get(self.tracer.producer_of(x) or "\0")
        if op in SOFTMAX:
            dim = softmax_dim(x, args, kwargs)
            units = int(x.shape[dim]) if x.dim() else 1
            site = self._site(op, x, module_path, module, producer, dim, units)
            rows = _as_units(x, dim if x.dim() else None)
            p_max = torch.softmax(rows, dim=-1).max(dim=-1).values
            site.rows += int(rows.shape[0])
            for level in self.levels:
                bar = 1.0 / (1.0 + math.exp(-level))  # sigmoid(level): a 2-class logit gap of `level`
                site.rows_peaked[level] = site.rows_peaked.get(level, 0) + int((p_max > bar).sum())
            site.observations += int(rows.shape[0])
            site.calls += 1
            self._last_site = site
            return
        udim = unit_dim_for(x, prod_module)
        units = int(x.shape[udim]) if udim is not None else 1
        site = self._site(op, x, module_path, module, producer, udim, units)
        if site.units != units:  # same call site, different width (rare): keep the first width
            return
        v = _as_units(x, udim)
        site.observations += int(v.shape[0])
        site.calls += 1
        self._last_site = site
        if op in BOUNDED:
            for level in self.levels:
                a = (v > level).sum(0).cpu()
                b = (v < -level).sum(0).cpu()
                site.above[level] = site.above[level] + a if level in site.above else a
                site.below[level] = site.below[level] + b if level in site.below else b
        else:
            active = (v > 0).sum(0).cpu()
            mx = v.max(0).values.cpu()
            site.active = active if site.active is None else site.active + active
            site.max_input = mx if site.max_input is None else torch.maximum(site.max_input, mx)

    def on_call(self, info: CallInfo) -> None:
        self.ops.on_call(info)
        site, self._last_site = self._last_site, None
        if site is not None and info.op == site.op:  # name the output after its site, for chains
            for t in _tensors(info.output):
                self.origin[id(t)] = (site.label, t)
        elif info.op in PASSTHROUGH:  # x.view(...), x.squeeze(1), dropout: keep the producer's name
            label = self._producer_label(_first_arg(info.args, info.kwargs))
            if label is not None:
                for t in _tensors(info.output):
                    self.origin.setdefault(id(t), (label, t))

    def on_module(self, path, module, inputs, output) -> None:
        if isinstance(module, torch.nn.RNN) and module.nonlinearity in ("relu", "tanh"):
            out = output[0] if isinstance(output, (tuple, list)) else output
            if isinstance(out, torch.nn.utils.rnn.PackedSequence):
                out = out.data
            if not isinstance(out, torch.Tensor):
                return
            op = module.nonlinearity
            label_module = module
            # The RNN's output already went through the nonlinearity: recover what we can.
            # relu: output > 0 iff input > 0. tanh: input = atanh(output), clamped.
            x = out if op == "relu" else torch.atanh(out.double().clamp(-1 + 1e-15, 1 - 1e-15))
            units = int(out.shape[-1])
            site = self._site(op, x, path, None, path, out.dim() - 1, units, key_extra="rnn")
            site.label = f"{path} ({type(label_module).__name__}, {op} hidden units)"
            site.where = path
            v = _as_units(x, out.dim() - 1)
            site.observations += int(v.shape[0])
            site.calls += 1
            if op == "relu":
                active = (v > 0).sum(0).cpu()
                site.active = active if site.active is None else site.active + active
                mx = v.max(0).values.cpu()
                site.max_input = mx if site.max_input is None else torch.maximum(site.max_input, mx)
            else:
                for level in self.levels:
                    a, b = (v > level).sum(0).cpu(), (v < -level).sum(0).cpu()
                    site.above[level] = site.above[level] + a if level in site.above else a
                    site.below[level] = site.below[level] + b if level in site.below else b

    def finished_sites(self) -> list[Site]:
        sites = [self.sites[k] for k in self.order]
        counts: dict[str, int] = {}
        for s in sites:
            counts[s.label] = counts.get(s.label, 0) + 1
        seen: dict[str, int] = {}
        for s in sites:
            if counts[s.label] > 1:
                seen[s.label] = seen.get(s.label, 0) + 1
                s.label = f"{s.label} #{seen[s.label]}"
        return sites


def _run_pass(bench: Any, model: torch.nn.Module, batches: list[Any],
              levels: tuple[float, ...]) -> ActivationTrace:
    """Record every activation site of ``model`` over ``batches`` (train mode, no grad)."""
    tracer = CallTracer(model)
    rec = _Recorder(model, tracer, tuple(sorted(set(levels))))
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
