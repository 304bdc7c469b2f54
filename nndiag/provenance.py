"""Op provenance: which op produced a tensor during a traced forward.

:class:`OpRecorder`, fed by a :class:`~nndiag.torchhooks.CallTracer`, remembers for every tensor
the op that made it (:class:`OpRecord`: the op, the module it ran in, its first input, a
softmax's dimension); :meth:`OpRecorder.chain` walks back through the ops that only move values
(:data:`PASSTHROUGH`) to the op that made them. The activation pass reads it for the op behind the
model output, ``loss-setup`` for the op behind each loss input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nndiag.torchhooks import CallInfo

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
#: Softmax-type ops: their records keep the dimension they normalise over.
SOFTMAX = {"softmax", "log_softmax"}


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
        x = first_arg(info.args, info.kwargs)
        dim = dim_size = None
        if info.op in SOFTMAX and isinstance(x, torch.Tensor):
            dim = softmax_dim(x, info.args, info.kwargs)
            dim_size = int(x.shape[dim]) if x.dim() else 1
        rec = OpRecord(info.op, info.name, info.module_path,
                       self._types.get(info.module_path, "?"), info.producer, x, info.output,
                       dim, dim_size)
        for t in tensors(info.output):
            self.records[id(t)] = rec

    def lookup(self, t: Any) -> OpRecord | None:
        """The record of the op whose output is this very tensor, if any."""
        if not isinstance(t, torch.Tensor):
            return None
        rec = self.records.get(id(t))
        if rec is None or not any(o is t for o in tensors(rec.output)):
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



def first_arg(args: tuple, kwargs: dict) -> Any:
    """The first argument of a traced call (its ``input``/``self`` keyword when passed by name)."""
    if args:
        return args[0]
    return kwargs.get("input", kwargs.get("self"))


def tensors(obj: Any):
    """The tensors in ``obj``: itself, or those in a (nested) list or tuple."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from tensors(v)


def softmax_dim(x: torch.Tensor, args: tuple, kwargs: dict) -> int:
    """The dimension a softmax/log_softmax call normalises over (torch's implicit rule for None)."""
    dim = args[1] if len(args) > 1 else kwargs.get("dim")
    if dim is None:  # torch.nn.functional._get_softmax_dim: the legacy implicit choice
        dim = 0 if x.dim() in (0, 1, 3) else 1
    if isinstance(dim, str):  # named dimension
        dim = x.names.index(dim)
    return int(dim) % max(x.dim(), 1)
