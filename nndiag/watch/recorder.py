"""The every-step measurements, kept on the device: loss and one gradient norm per parameter.

Per step this costs one fused ``torch._foreach_norm`` over the gradients and one ``torch.stack``;
nothing is copied to the host until :meth:`Recorder.flush`, once per log interval. The per-parameter
L2 norms serve twice: their sum is finite exactly when every gradient is finite (L2 of finite fp32
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


UNMEASURED = "unmeasured"  # a step whose full gradient norms were not taken (norm_every > 1)


class Recorder:
    """Per-step device buffers, flushed into a :class:`Timeline`."""

    def __init__(self, names: Sequence[str], params: Sequence[torch.nn.Parameter]) -> None:
        self.names = list(names)
        self.params = list(params)
        self.layers = list(dict.fromkeys(layer_of(n) for n in self.names))
        index = {layer: i for i, layer in enumerate(self.layers)}
        self._layer_index = [index[layer_of(n)] for n in self.names]
        self._onehot: torch.Tensor | None = None
        self._norms: list[torch.Tensor | None] = []  # one row per step (None: no optimizer step)
        self._pending: torch.Tensor | None = None  # the current step's row, until record_step
        self._losses: list[torch.Tensor | float] = []
        self._lrs: list[float] = []
        self._has_loss: list[bool] = []

    def sentinel_finite(self, small: list[torch.nn.Parameter]) -> bool:
        """Whether the gradients of the small parameters (biases, norm scales) are finite: a NaN
        made anywhere in backward flows upstream into them, at a fraction of a full pass's cost."""
        grads = [p.grad for p in small if p.grad is not None]
        if not grads:
            return True
        return bool(torch.isfinite(torch.stack(torch._foreach_norm(grads)).sum()).item())

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
        # detach only (one op): the reshape and dtype cast wait for the flush
        self._losses.append(loss.detach() if isinstance(loss, torch.Tensor)
                            else (NAN if loss is None else float(loss)))
        self._lrs.append(lr)
        self._has_loss.append(loss is not None)

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
        values = iter(torch.stack([t.reshape(()).float() for t in tensors]).tolist()) if tensors \
            else iter(())
        timeline.loss.extend(next(values) if isinstance(x, torch.Tensor) else x for x in losses)
        timeline.has_loss.extend(self._has_loss[:n])
        del self._has_loss[:n]
        timeline.lr.extend(self._lrs[:n])
        del self._lrs[:n]
        rows = [r for r in norms if isinstance(r, torch.Tensor)]
        per_layer: list[list[float]] = []
        glob: list[float] = []
        if rows:
            mat = torch.stack([r.to(rows[0].device) for r in rows]).double()
            sq = mat.pow(2)
            if self._onehot is None or self._onehot.device != sq.device:
                self._onehot = torch.zeros(len(self.names), len(self.layers), dtype=torch.float64,
                                           device=sq.device)
                self._onehot[torch.arange(len(self.names)), torch.tensor(self._layer_index)] = 1.0
            per_layer = (sq @ self._onehot).sqrt().tolist()
            glob = sq.sum(1).sqrt().tolist()
        it_layer, it_glob = iter(per_layer), iter(glob)
        for r in norms:
            timeline.skipped.append(r is None)
            timeline.measured.append(isinstance(r, torch.Tensor))
            if not isinstance(r, torch.Tensor):
                timeline.grad_norm.append(NAN)
                for layer in self.layers:
                    timeline.layer_grad.setdefault(layer, []).append(NAN)
                continue
            timeline.grad_norm.append(next(it_glob))
            for layer, v in zip(self.layers, next(it_layer)):
                timeline.layer_grad.setdefault(layer, []).append(v)
        return n


def finite_number(x: float) -> bool:
    """math.isfinite that treats None as not finite."""
    return x is not None and math.isfinite(x)
