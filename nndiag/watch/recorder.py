"""The every-step measurements, kept on the device: loss and one gradient norm per parameter.

A step with full norms costs one fused ``torch._foreach_norm`` over the gradients and one
``torch.stack``; the other steps check only the small parameters' gradients (three tensor ops,
:meth:`Recorder.sentinel_finite`). Nothing is copied to the host until :meth:`Recorder.flush`, once
per log interval, except the one finiteness flag that the step clock reads. The per-parameter L2
norms serve twice: their sum is finite exactly when every gradient is finite (L2 of finite fp32
values overflows only above ~1e19 per element, which the exact check on a trip tells apart), and
they give the global and per-layer gradient norms.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from nndiag.watch.timeline import NAN, Timeline


def layer_of(param_name: str) -> str:
    """The module path of a parameter: ``encoder.3.weight`` -> ``encoder.3``."""
    return param_name.rsplit(".", 1)[0] if "." in param_name else param_name


def _flatten_by_cat(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


# one C++ call that flattens and concatenates (DDP's bucketing uses it); the same by torch.cat if
# a torch build lacks it
_flatten = getattr(torch._C._nn, "flatten_dense_tensors", _flatten_by_cat)
HOST_NORMS = 2048  # up to this many per-parameter norms per flush, per-layer sums on the host
UNMEASURED = "unmeasured"  # a step whose full gradient norms were not taken (norm_every > 1)


SMALL_PARAM = 4096  # parameters up to this size (biases, norm scales, small weights) are checked every step
SENTINEL_BUDGET = 16384  # at most this many elements in the every-step flag (its cost is per tensor, mostly)


def sentinel_parameters(params: list[torch.nn.Parameter]) -> list[torch.nn.Parameter]:
    """The parameters whose gradients carry the every-step finiteness flag between full-norm steps.

    First the vectors (biases, normalisation scales) up to SMALL_PARAM elements: a NaN or Inf in
    the gradient reaching a layer's output is summed into its bias gradient. That misses a NaN
    *activation* when the loss's gradient does not depend on the output (a sum or mean of the
    outputs): the ReLU's backward masks the NaN rows to zero and the biases' gradients stay finite,
    while every weight downstream of the NaN gets one (NaN times anything is NaN). So the weights
    up to SMALL_PARAM elements come next, the last registered first (the output layer usually is,
    and it is downstream of everything), within SENTINEL_BUDGET elements. A model without any of
    these falls back to all its parameters. A NaN that reaches none of them (weights all larger) is
    seen by the next full-norm step; the watch then names the step whose loss was first
    non-finite (:meth:`nndiag.watch.core.Watch._trip`)."""
    chosen = [p for p in params if p.dim() <= 1 and p.numel() <= SMALL_PARAM]
    total = sum(p.numel() for p in chosen)
    for p in reversed(params):
        if p.dim() >= 2 and p.numel() <= SMALL_PARAM and total + p.numel() <= SENTINEL_BUDGET:
            chosen.append(p)
            total += p.numel()
    return chosen if chosen else list(params)


class Recorder:
    """Per-step device buffers, flushed into a :class:`Timeline`."""

    def __init__(self, names: Sequence[str], params: Sequence[torch.nn.Parameter]) -> None:
        self.names = list(names)
        self.params = list(params)
        self.layers = list(dict.fromkeys(layer_of(n) for n in self.names))
        index = {layer: i for i, layer in enumerate(self.layers)}
        self._layer_index = [index[layer_of(n)] for n in self.names]
        self._index: torch.Tensor | None = None  # parameter -> layer, on the rows' device
        self._norms: list[torch.Tensor | None] = []  # one row per step (None: no optimizer step)
        self._pending: torch.Tensor | None = None  # the current step's row, until record_step
        self._losses: list[torch.Tensor | float] = []
        self._lrs: list[float] = []
        self._has_loss: list[bool] = []
        self._found: torch.Tensor | None = None  # the fused flag's output (sentinel_finite)
        self._found_view: object = None  # its NumPy view on the CPU (read without a torch op)
        self._unit: torch.Tensor | None = None
        self._fused_flag = True

    def _place_flag(self, device: torch.device) -> bool:
        """Put the fused flag's tensors on ``device`` (the gradients' device); False when they
        are already there, so the failure was the kernel's, not the placement's."""
        if self._found is not None and self._found.device == device:
            return False
        self._found = torch.zeros(1, device=device)
        self._unit = torch.ones(1, device=device)
        self._found_view = None
        if device.type == "cpu":
            try:
                self._found_view = self._found.numpy()
            except (RuntimeError, TypeError):  # a torch built without NumPy: read with .item()
                self._found_view = None
        return True

    def sentinel_finite(self, small: list[torch.nn.Parameter]) -> bool:
        """Whether the gradients of the small parameters (biases, norm scales) are finite: a NaN
        made anywhere in backward flows upstream into them, at a fraction of a full pass's cost.

        One fused op and one read (on the CPU through a NumPy view of the flag, no torch op):
        GradScaler's own finiteness kernel
        (``torch._amp_foreach_non_finite_check_and_unscale_``) over the gradients, with a scale
        of exactly 1, so every value is left bit for bit as it was; it only sets a flag on the
        first NaN/Inf element. It tests each element, so no sum can overflow. On the CPU every op
        after a backward costs microseconds, so one kernel instead of three (flatten, sum, read)
        matters (docs/watch.md, measured overhead). Gradients it cannot take (sparse ones,
        gradients that are part of a graph under ``create_graph=True``, several devices) go
        through :meth:`_summed_finite`."""
        # one plain loop, no comprehension or generator frames: this runs every step
        grads, in_graph = [], False
        for p in small:
            g = p.grad
            if g is not None:
                grads.append(g)
                in_graph = in_graph or g.requires_grad
        if not grads:
            return True
        # a gradient that requires grad is part of a graph (create_graph=True): not written to
        if self._fused_flag and not in_graph:
            try:
                # found stays 0 while every gradient is finite; the first non-finite one trips the
                # watch, which then checks no more, so the flag is never reset
                torch._amp_foreach_non_finite_check_and_unscale_(grads, self._found, self._unit)
            except (RuntimeError, NotImplementedError, TypeError):
                if not self._place_flag(grads[0].device):  # not a first call, nor a model moved
                    self._fused_flag = False  # the kernel cannot take these gradients
                    return self._summed_finite(grads)
                try:
                    torch._amp_foreach_non_finite_check_and_unscale_(grads, self._found, self._unit)
                except (RuntimeError, NotImplementedError):
                    self._fused_flag = False  # this model's gradients take the general path from now on
                    return self._summed_finite(grads)
            # on the CPU the flag is read through a NumPy view of its memory: no torch op at all
            # (each op after a backward costs microseconds there); elsewhere one read
            view = self._found_view
            return not view[0] if view is not None else self._found.item() == 0.0  # found 0: all finite
        return self._summed_finite(grads)

    def steady_flag(self, small: list[torch.nn.Parameter]) -> bool:
        """A steady step's gradients (no full norms): marked unmeasured, and the small
        parameters' flag read (:meth:`sentinel_finite`)."""
        self._pending = UNMEASURED
        return self.sentinel_finite(small)

    @staticmethod
    def _summed_finite(grads: list[torch.Tensor]) -> bool:
        """The general flag: flatten and concatenate in one call, sum, read (NaN and Inf survive a
        sum; a sum that overflows from finite values reads as not finite, which the caller tells
        apart exactly)."""
        try:
            flat = _flatten(grads) if len(grads) > 1 else grads[0]
        except RuntimeError:  # gradients on several devices: one sum per gradient
            return all(math.isfinite(float(g.sum(dtype=torch.float32))) for g in grads)
        # float16 sums overflow at 65504: accumulate those in float32
        total = flat.sum(dtype=torch.float32) if flat.dtype == torch.float16 else flat.sum()
        return math.isfinite(total.item())

    def grad_norms(self) -> torch.Tensor:
        """Per-parameter gradient L2 norms as one device vector (a missing grad counts as 0)."""
        grads = [p.grad for p in self.params if p.grad is not None]
        if not grads:
            return torch.zeros(len(self.params))
        norms = torch._foreach_norm(grads)
        if len(grads) == len(self.params):
            return torch.stack([n.float() for n in norms]) if norms[0].dtype != torch.float32 \
                else torch.stack(norms)
        out, it = [], iter(norms)
        for p in self.params:
            out.append(next(it).float() if p.grad is not None else torch.zeros((), device=norms[0].device))
        return torch.stack(out)

    def record_grads(self, row: "torch.Tensor | str") -> None:
        """Keep the norms of the current step's optimizer step (the last one, if several)."""
        self._pending = row

    def record_step(self, loss: torch.Tensor | float | None, lr: float, stepped: bool) -> None:
        """Close one step: its loss (a device tensor, not synced), LR and whether the optimizer ran."""
        self._norms.append(self._pending if stepped else None)
        self._pending = None
        # .data: the values without the graph, and without an op through the dispatcher (detach()
        # is one, which costs microseconds after a backward on the CPU); the flush reads them
        self._losses.append(loss.data if isinstance(loss, torch.Tensor)
                            else (NAN if loss is None else float(loss)))
        self._lrs.append(lr)
        self._has_loss.append(loss is not None)

    def merge_first(self, k: int) -> bool:
        """Make the ``k`` buffered steps one (the optimizer stepped ``k`` times in one training
        step): the last full norms among them, the last loss and LR. False, and nothing changed,
        unless exactly those ``k`` are buffered."""
        if k < 2 or len(self._norms) != k or len(self._losses) != k:
            return False
        rows = [r for r in self._norms if isinstance(r, torch.Tensor)]
        self._norms[:] = [rows[-1] if rows else self._norms[-1]]
        self._losses[:] = self._losses[-1:]
        self._lrs[:] = self._lrs[-1:]
        self._has_loss[:] = self._has_loss[-1:]
        return True

    def first_non_finite_loss(self, first_step: int, before: int) -> tuple[int, float] | None:
        """(step, value) of the first non-finite loss still buffered, the buffer holding the steps
        from ``first_step`` on, among those before ``before``; reads the device (a trip only)."""
        for i, (value, has) in enumerate(zip(self._losses, self._has_loss)):
            if first_step + i >= before:
                break
            if has:
                v = float(value.reshape(-1)[0]) if isinstance(value, torch.Tensor) else float(value)
                if not math.isfinite(v):
                    return first_step + i, v
        return None

    def set_last_loss(self, loss: torch.Tensor | float, timeline: Timeline) -> None:
        """Attach a loss to the step already closed (by the optimizer hook, before ``w.step``)."""
        value = loss.detach().reshape(()).float() if isinstance(loss, torch.Tensor) else float(loss)
        if self._losses:
            self._losses[-1] = value
            self._has_loss[-1] = True
        elif timeline.loss:
            timeline.loss[-1] = float(value)
            timeline.has_loss[-1] = True

    def flush(self, timeline: Timeline) -> int:
        """Copy the buffered steps to ``timeline`` (the one host sync); returns how many."""
        n = len(self._losses)
        if n == 0:
            return 0
        norms, losses = self._norms[:n], self._losses[:n]
        del self._norms[:n], self._losses[:n]
        tensors = [x for x in losses if isinstance(x, torch.Tensor)]
        values = iter(_as_floats(tensors))
        timeline.loss.extend(next(values) if isinstance(x, torch.Tensor) else x for x in losses)
        timeline.has_loss.extend(self._has_loss[:n])
        del self._has_loss[:n]
        timeline.lr.extend(self._lrs[:n])
        del self._lrs[:n]
        rows = [r for r in norms if isinstance(r, torch.Tensor)]
        per_layer, glob = self._layer_norms(rows) if rows else ([], [])
        measured = [isinstance(r, torch.Tensor) for r in norms]
        timeline.skipped.extend(r is None for r in norms)
        timeline.measured.extend(measured)
        it_glob = iter(glob)
        timeline.grad_norm.extend(next(it_glob) if m else NAN for m in measured)
        # column by column: one extend per layer, not one append per layer and step
        blank = [NAN] * len(self.layers)
        it_layer = iter(per_layer)
        columns = zip(*[next(it_layer) if m else blank for m in measured])
        for layer, column in zip(self.layers, columns):
            timeline.layer_grad.setdefault(layer, []).extend(column)
        return n

    def _layer_norms(self, rows: list[torch.Tensor]) -> tuple[list[list[float]], list[float]]:
        """(per-layer norms per row, global norm per row) from rows of per-parameter norms. A few
        rows of a few parameters are summed on the host after one read (a dozen tensor ops cost
        more than the loop); larger ones with one matrix product on the rows' device."""
        device = rows[0].device
        same = all(r.device == device for r in rows)
        mat = torch.stack(rows if same else [r.to(device) for r in rows])
        if mat.numel() <= HOST_NORMS:
            index, k = self._layer_index, len(self.layers)
            per_layer, glob = [], []
            for row in mat.tolist():  # float32 -> Python float is exact; squares in float64
                acc = [0.0] * k
                for i, v in zip(index, row):
                    acc[i] += v * v
                per_layer.append([math.sqrt(a) for a in acc])
                glob.append(math.sqrt(sum(acc)))
            return per_layer, glob
        sq = mat.double().pow(2)
        if self._index is None or self._index.device != sq.device:
            self._index = torch.tensor(self._layer_index, device=sq.device)
        # index_add, not a one-hot matrix product: a NaN stays in its own layer (NaN * 0 is NaN)
        per_layer = torch.zeros(len(rows), len(self.layers), dtype=torch.float64, device=sq.device)
        per_layer.index_add_(1, self._index, sq)
        return per_layer.sqrt().tolist(), sq.sum(1).sqrt().tolist()


def _as_floats(tensors: list[torch.Tensor]) -> list[float]:
    """The one-element tensors as floats, with one stack and one host read when they agree in
    shape, dtype and device (the usual case: one scalar loss per step)."""
    if not tensors:
        return []
    try:
        flat = torch.stack(tensors)
        if flat.numel() == len(tensors):  # float16/bfloat16/float64 -> Python float is exact
            return (flat if flat.dim() == 1 else flat.reshape(-1)).tolist()
    except RuntimeError:  # losses of mixed shapes or devices: one at a time
        pass
    return [float(t.reshape(())) for t in tensors]  # a loss of several values raises here, clearly


def finite_number(x: float) -> bool:
    """math.isfinite that treats None as not finite."""
    return x is not None and math.isfinite(x)
