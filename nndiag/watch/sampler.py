"""The every-N-steps measurements: dead and saturated units, and update/weight ratios per layer.

On a sample step the next training forward runs under a :class:`~nndiag.torchhooks.CallTracer`
restricted to the activation ops, entered by a forward pre-hook on the root module and left by its
forward hook, so functional calls (``torch.relu(self.fc1(x))``) are seen as well as modules
(``nn.ReLU``). For each activation call site it keeps, per unit, whether the unit's input was ever
positive (ReLU family) or how often it was beyond the saturation limit (sigmoid/tanh). The update
ratio ``|w_after - w_before| / |w_before|`` per layer needs a copy of the weights before the
optimizer step, taken on sample steps only.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from nndiag.torchhooks import CallInfo, CallTracer
from nndiag.watch.recorder import layer_of

RELU_OPS = {"relu", "relu6"}
SATURATING_OPS = {"sigmoid", "tanh"}


def _units(x: torch.Tensor) -> torch.Tensor:
    """(observations, units): channels are dim 1 for (B, C, H, W[, D]) maps, else the last dim."""
    if x.dim() <= 1:
        return x.reshape(-1, 1)
    if x.dim() in (4, 5):
        return x.transpose(0, 1).reshape(x.shape[1], -1).t()
    return x.reshape(-1, x.shape[-1])


class ActivationSampler:
    """Per-site unit statistics of one (or a few) training forwards."""

    def __init__(self, model: torch.nn.Module, saturation_input: float, saturation_unit: float,
                 trace_root: torch.nn.Module | None = None) -> None:
        self.model = model  # the root hooks go here (a torch.compile wrapper, if there is one)
        self.trace_root = model if trace_root is None else trace_root  # sites are named from here
        self.limit = saturation_input
        self.unit_fraction = saturation_unit
        self.alive: dict[str, torch.Tensor] = {}  # site -> bool per unit (ever positive)
        self.observations: dict[str, int] = {}  # site -> inputs per unit seen (ReLU sites)
        self.sat: dict[str, list[torch.Tensor]] = {}  # site -> [saturated count per unit, observations]
        self._tracer: CallTracer | None = None
        self._ctx: Any = None
        self._handles: list[Any] = []
        self._calls: dict[tuple, int] = {}
        self._last_out: dict[str, Any] = {}  # site -> its latest output, during one forward
        self.last_observations: dict[str, int] = {}
        self.output_sites: set[str] = set()  # sites whose output is the model's output

    def arm(self) -> None:
        """Trace the next training forward(s) until :meth:`disarm`."""
        if self._handles:
            return
        from nndiag.watch.events import WatchHook

        self._handles = [self.model.register_forward_pre_hook(WatchHook(self._enter)),
                         self.model.register_forward_hook(WatchHook(self._exit), always_call=True)]

    def disarm(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """Stop tracing; (dead fraction, saturated fraction) per site seen, as 0-d tensors on the
        model's device: the watch reads them at its next flush, with everything else, so a sample
        step makes no host sync of its own (:func:`read_samples`)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._leave()
        dead = {k: 1.0 - v.float().mean() for k, v in self.alive.items()}
        self.last_observations, self.observations = self.observations, {}
        sat = {}
        for k, (count, obs) in self.sat.items():
            frac = count.float() / max(float(obs), 1.0)
            name = f"{k} (model output)" if k in self.output_sites else k
            sat[name] = (frac > self.unit_fraction).float().mean()
        self.alive, self.sat, self._calls = {}, {}, {}
        return dead, sat

    def _enter(self, module, inputs) -> None:
        if not module.training or self._ctx is not None:
            return
        self._calls = {}
        self._tracer = CallTracer(self.trace_root, on_call=self._on_call, ops=RELU_OPS | SATURATING_OPS)
        self._ctx = self._tracer.active()
        self._ctx.__enter__()

    def _exit(self, module, inputs, output) -> None:
        # A final sigmoid/tanh saturates as the model grows confident: that is learning, not a bug
        # (the saturation probe does not judge a trained model's output activation either).
        for site, out in self._last_out.items():
            if out is output:
                self.output_sites.add(site)
        self._last_out = {}
        self._leave()

    def _leave(self) -> None:
        if self._ctx is not None:
            ctx, self._ctx = self._ctx, None
            ctx.__exit__(None, None, None)

    def _site(self, info: CallInfo) -> str:
        where = info.where if info.module is not None and info.module is not self.model else ""
        if info.module is not None and type(info.module).__name__.lower() in (info.op, info.op + "6"):
            return where  # an nn.ReLU / nn.Tanh module: its own name is the site
        after = f" after {info.producer}" if info.producer else ""
        key = (where, info.op, info.producer)
        n = self._calls.get(key, 0)
        self._calls[key] = n + 1
        base = f"{info.name}{after}" + (f" in {where}" if where else "")
        return base if n == 0 else f"{base} #{n + 1}"

    def _on_call(self, info: CallInfo) -> None:
        x = info.args[0] if info.args else None
        if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.numel() == 0:
            return
        site = self._site(info)
        u = _units(x.detach())
        if info.op in RELU_OPS:
            seen = (u > 0).any(0)
            self.observations[site] = self.observations.get(site, 0) + u.shape[0]
            prev = self.alive.get(site)
            self.alive[site] = seen if prev is None or prev.shape != seen.shape else prev | seen
        else:
            self._last_out[site] = info.output
            count = (u.abs() > self.limit).sum(0)
            prev = self.sat.get(site)
            if prev is None or prev[0].shape != count.shape:
                self.sat[site] = [count, u.shape[0]]
            else:
                prev[0] = prev[0] + count
                prev[1] += u.shape[0]


class UpdateSampler:
    """Weights before the optimizer step of a sample step, then the per-layer update ratio."""

    def __init__(self, names: list[str], params: list[torch.nn.Parameter]) -> None:
        self.names, self.params = names, params
        self._before: list[torch.Tensor] | None = None

    @property
    def has_snapshot(self) -> bool:
        """True between :meth:`snapshot` and :meth:`ratios`."""
        return self._before is not None

    def snapshot(self) -> None:
        """Copy the weights (call just before the optimizer step)."""
        with torch.no_grad():
            self._before = [p.detach().clone() for p in self.params]

    def ratios(self) -> "PendingRatios | None":
        """The norms of this step's updates and of the weights before it, on device (read at the
        next flush: :meth:`PendingRatios.resolve`); None without a snapshot."""
        if self._before is None:
            return None
        with torch.no_grad():
            deltas = torch._foreach_sub([p.detach() for p in self.params], self._before)
            dn = torch.stack([n.float() for n in torch._foreach_norm(deltas)])
            wn = torch.stack([n.float() for n in torch._foreach_norm(self._before)])
        self._before = None
        return PendingRatios(self.names, torch.stack([dn, wn]))


class PendingRatios:
    """One sample's update and weight norms per parameter, still on the device."""

    def __init__(self, names: list[str], norms: torch.Tensor) -> None:
        self.names, self.norms = names, norms  # norms: (2, parameters), update then weight

    def resolve(self, values: list[float]) -> tuple[dict[str, float], list[str]]:
        """(update/weight ratio per layer, parameters unchanged by the step) from ``values``, the
        host copy of :attr:`norms` flattened."""
        n = len(self.names)
        dn, wn = values[:n], values[n:2 * n]
        num: dict[str, float] = {}
        den: dict[str, float] = {}
        unchanged = []
        for name, d, w in zip(self.names, dn, wn):
            layer = layer_of(name)
            num[layer] = num.get(layer, 0.0) + d * d
            den[layer] = den.get(layer, 0.0) + w * w
            if d == 0.0:
                unchanged.append(name)
        out = {k: (math.sqrt(num[k]) / math.sqrt(den[k]) if den[k] > 0 else math.nan) for k in num}
        return out, unchanged


def read_samples(tensors: list[torch.Tensor]) -> list[list[float]]:
    """The host values of ``tensors`` (any shapes, any devices), flattened per tensor, with one
    device-to-host copy per device: the one sync a flush makes for every buffered sample."""
    out: list[list[float]] = [[] for _ in tensors]
    by_device: dict[Any, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    for idx in by_device.values():
        flat = torch.cat([tensors[i].detach().reshape(-1).double() for i in idx]).tolist()
        at = 0
        for i in idx:
            k = tensors[i].numel()
            out[i] = flat[at:at + k]
            at += k
    return out


def store_samples(pending: list[tuple[int, dict[str, Any]]], timeline: Any, updates_check: Any) -> None:
    """Read the buffered samples' device numbers to the host in one copy (:func:`read_samples`)
    and append them to ``timeline``: dead and saturated fractions and update ratios per site, and
    the parameters unchanged by each sample's update, for ``updates_check`` (``watch.updates``)."""
    tensors: list[torch.Tensor] = []
    for _, s in pending:
        tensors += list(s.get("dead", {}).values()) + list(s.get("saturated", {}).values())
        if s.get("ratios") is not None:
            tensors.append(s["ratios"].norms)
    values = iter(read_samples(tensors))
    tl = timeline
    for step, s in pending:
        dead = {k: next(values)[0] for k in s.get("dead", {})}
        saturated = {k: next(values)[0] for k in s.get("saturated", {})}
        ratios, unchanged = ({}, None) if s.get("ratios") is None else s["ratios"].resolve(next(values))
        j = len(tl.samples)
        tl.samples.append(step)
        for found, series in ((dead, tl.dead), (saturated, tl.saturated), (ratios, tl.update_ratio)):
            for site, value in found.items():
                col = series.setdefault(site, [])
                col.extend([float("nan")] * (j - len(col)))
                col.append(value)
        if updates_check is not None and hasattr(updates_check, "unchanged_per_sample"):
            per = updates_check.unchanged_per_sample
            per.extend([[]] * (j - len(per)))
            # None: no optimizer step ran on this sample, so there is nothing to compare
            per.append(unchanged)
