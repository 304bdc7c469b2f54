"""Activation sites: per-unit counters of every place an activation function runs.

:class:`SiteRecorder` holds the :class:`~nndiag.torchhooks.CallTracer` callbacks of the activation
pass (:mod:`nndiag.activation_trace`): module activations (``nn.ReLU``) and function calls inside
``forward`` (``torch.relu``, ``F.relu``, ``x.relu()``, ``F.relu6``, ``torch.sigmoid``,
``F.softmax`` ...) both update a :class:`Site`. Only per-unit counters are kept, never whole tensors.

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

from nndiag.provenance import (
    PASSTHROUGH,
    SOFTMAX,
    OpRecorder,
    first_arg,
    softmax_dim,
    tensors,
)
from nndiag.torchhooks import CallInfo, CallTracer

#: Activation functions that zero (or nearly zero) their negative side: the dead-neurons family.
#: relu and relu6 give exactly zero gradient there; the others keep a small one ("leaky").
RELU_FAMILY = {"relu", "relu6", "leaky_relu", "rrelu", "elu", "selu", "celu", "gelu", "silu",
               "mish", "hardswish"}
#: Ops with a zero gradient for every negative input: a unit that never gets a positive input is dead.
HARD_ZERO = {"relu", "relu6"}
#: Bounded S-shaped activations: saturation family.
BOUNDED = {"sigmoid", "tanh"}
WATCHED = RELU_FAMILY | BOUNDED | SOFTMAX
#: Fused attention kernels: their softmax runs inside one call that no hook can look into.
FUSED_ATTENTION = {"scaled_dot_product_attention", "multi_head_attention_forward",
                   "_native_multi_head_attention", "_transformer_encoder_layer_fwd"}
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



def as_units(x: torch.Tensor, unit_dim: int | None) -> torch.Tensor:
    """``x`` as a 2-D (observations, units) float tensor."""
    x = x.detach()
    if unit_dim is None:
        return x.reshape(-1, 1).float()
    return x.movedim(unit_dim, -1).reshape(-1, x.shape[unit_dim]).float()


class SiteRecorder:
    """CallTracer callbacks that update the site counters (and, through :class:`OpRecorder`,
    record what produced each tensor)."""

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
        """Start a new forward: call indices and tensor names restart."""
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
        """CallTracer callback before a call: count a watched activation's input, note fused attention."""
        from nndiag.torchhooks import base_name

        op = base_name(func)
        self._last_site = None
        if op in FUSED_ATTENTION:
            from nndiag.torchhooks import function_name

            self.fused_attention.setdefault(f"{module_path or '<model>'} ({function_name(func)})")
            return
        if op not in WATCHED:
            return
        x = first_arg(args, kwargs)
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
            rows = as_units(x, dim if x.dim() else None)
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
        v = as_units(x, udim)
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
        """CallTracer callback after a call: record provenance, name the output after its site."""
        self.ops.on_call(info)
        site, self._last_site = self._last_site, None
        if site is not None and info.op == site.op:  # name the output after its site, for chains
            for t in tensors(info.output):
                self.origin[id(t)] = (site.label, t)
        elif info.op in PASSTHROUGH:  # x.view(...), x.squeeze(1), dropout: keep the producer's name
            label = self._producer_label(first_arg(info.args, info.kwargs))
            if label is not None:
                for t in tensors(info.output):
                    self.origin.setdefault(id(t), (label, t))

    def on_module(self, path, module, inputs, output) -> None:
        """CallTracer module callback: an ``nn.RNN``'s relu/tanh hidden units, from its output."""
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
            v = as_units(x, out.dim() - 1)
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
        """The sites in order of first appearance, repeated labels numbered ``#1``, ``#2`` ..."""
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
