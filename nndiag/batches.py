"""Batches as the contract defines them: ``(inputs, targets)``, where ``inputs`` is a tensor, a
tuple/list of tensors (positional arguments) or a dict of tensors (keyword arguments).

Small pure helpers: split a batch, call a model with its inputs, move or slice every tensor in it.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from nndiag.errors import SubjectError


def map_tensors(obj: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """Apply ``fn`` to every tensor inside nested tuples, lists and dicts; keep the structure."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: map_tensors(v, fn) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # namedtuple
        return type(obj)(*(map_tensors(v, fn) for v in obj))
    if isinstance(obj, (list, tuple)):
        return type(obj)(map_tensors(v, fn) for v in obj)
    return obj


def iter_tensors(obj: Any):
    """Yield every tensor inside nested tuples, lists and dicts, in order."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from iter_tensors(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from iter_tensors(v)


def to_device(obj: Any, device: torch.device | str) -> Any:
    """Move every tensor of ``obj`` to ``device``."""
    return map_tensors(obj, lambda t: t.to(device))


def split_batch(batch: Any, source: str = "the data") -> tuple[Any, Any]:
    """``(inputs, targets)`` of a batch; SubjectError naming the source when it has another shape."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    if isinstance(batch, dict) and {"inputs", "targets"} <= set(batch):
        return batch["inputs"], batch["targets"]
    kind = type(batch).__name__
    size = f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""
    raise SubjectError(
        f"{source} gave a batch that is a {kind}{size}; nndiag needs a batch of the form "
        "(inputs, targets).",
        hint="Return a pair, e.g. `return x, y`; with another batch format, give a "
        "training_step(model, batch) or train_step(model, optimizer, batch) that unpacks it (a "
        "probe that needs inputs and targets apart then skips).",
    )


def call_model(model: torch.nn.Module, inputs: Any) -> Any:
    """Run the model on ``inputs``: a tensor, positional tensors (tuple/list) or keywords (dict)."""
    if isinstance(inputs, dict):
        return model(**inputs)
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def batch_size(batch: Any) -> int:
    """Number of samples: the first dimension of the first tensor in the batch (0 if none)."""
    for t in iter_tensors(batch):
        return int(t.shape[0]) if t.dim() > 0 else 1
    return 0


def take_samples(batch: Any, n: int) -> Any:
    """The first ``n`` samples of every tensor in ``batch`` (tensors of another length are kept)."""
    size = batch_size(batch)
    if n >= size:
        return batch
    return map_tensors(batch, lambda t: t[:n] if t.dim() > 0 and t.shape[0] == size else t)


def describe_shapes(obj: Any) -> str:
    """A short text of the shapes in ``obj``, e.g. ``(32, 784)`` or ``{'x': (4, 3)}``."""
    if isinstance(obj, torch.Tensor):
        return str(tuple(obj.shape))
    if isinstance(obj, dict):
        return "{" + ", ".join(f"{k!r}: {describe_shapes(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "(" + ", ".join(describe_shapes(v) for v in obj) + ")"
    return type(obj).__name__


def first_tensor(obj: Any) -> torch.Tensor | None:
    """The first tensor in ``obj`` (a model output may be a tensor, tuple or dict), or None."""
    return next(iter(iter_tensors(obj)), None)
