"""Which loss functions one loss computation calls, and on what: a measurement for the probes.

Reading the class count from the model's output (its dimension 1) goes wrong as soon as the loss
reshapes it: a word-level LM's ``(seq*batch, vocab)``, a tagger's ``(N, T, V)`` flattened inside
the loss, a GAN whose ``train_step`` builds its own real/fake labels (issue 9). What counts is what
reaches the loss. :func:`record_loss_calls` runs the subject's own loss computation once under a
:class:`~nndiag.torchhooks.CallTracer` restricted to the loss functions of
``torch.nn.functional`` (``nn.CrossEntropyLoss`` and friends call them too) and records, for each
call, the input and target it got and whether that target is the batch's own targets. Arguments
are recorded *before* the call, so a call that raises (a class id out of range) is still seen.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import torch

from nndiag.batches import iter_tensors, split_batch
from nndiag.errors import SubjectError
from nndiag.torchhooks import CallTracer

#: torch.nn.functional loss -> what its target holds.
LOSS_KINDS = {
    "cross_entropy": "class-index", "nll_loss": "class-index",
    "binary_cross_entropy": "probability", "binary_cross_entropy_with_logits": "probability",
    "mse_loss": "regression", "l1_loss": "regression", "smooth_l1_loss": "regression",
    "huber_loss": "regression",
}


@dataclass(frozen=True)
class LossCall:
    """One call of a loss function: its op, input, target and the settings that matter."""

    op: str  # "cross_entropy", "binary_cross_entropy", ...
    kind: str  # "class-index", "probability" or "regression"
    input: torch.Tensor
    target: torch.Tensor
    ignore_index: int | None  # class-index losses only
    from_batch: bool  # the target is (a view or a copy of) the batch's own targets

    @property
    def classes(self) -> int | None:
        """Number of classes a class-index loss sees: dimension 1 of its input (0 if unbatched)."""
        if self.kind != "class-index" or self.input.dim() == 0:
            return None
        return int(self.input.shape[1] if self.input.dim() >= 2 else self.input.shape[0])


def _named_args(func, args, kwargs) -> dict[str, Any]:
    try:
        bound = inspect.signature(func).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):
        return {}
    return dict(bound.arguments)


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.numel() != b.numel() or a.numel() == 0:
        return False
    try:
        if a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr():
            return True
        # Equal values count only when they carry information: a constant batch target and the
        # all-ones labels a GAN's step makes itself would be "equal" by accident.
        if torch.unique(b.detach()).numel() < 2:
            return False
        return bool(torch.equal(a.detach().reshape(-1).to(b.device).double(),
                                b.detach().reshape(-1).double()))
    except (RuntimeError, NotImplementedError):
        return False


def record_loss_calls(bench, batch: Any) -> list[LossCall]:
    """Run the subject's loss computation on ``batch`` once and return the loss calls it made.

    A fresh model is used (the user's ``train_step`` updates it, which is fine: it is thrown away).
    An error raised by the user's code after the calls were recorded is swallowed here: the
    probes that run the step report it; what was recorded before it is still evidence.
    """
    s = bench.subject
    try:
        batch_targets = [t for t in iter_tensors(split_batch(batch, s.data_source)[1])]
    except SubjectError:
        batch_targets = []
    calls: list[LossCall] = []

    def before(func, args, kwargs, path, module) -> None:
        op = getattr(func, "__name__", "")
        kind = LOSS_KINDS.get(op)
        named = _named_args(func, args, kwargs)
        inp, tgt = named.get("input"), named.get("target")
        if kind is None or not isinstance(inp, torch.Tensor) or not isinstance(tgt, torch.Tensor):
            return
        ignore = named.get("ignore_index", -100) if kind == "class-index" else None
        calls.append(LossCall(op, kind, inp.detach(), tgt.detach(),
                              int(ignore) if isinstance(ignore, int) else None,
                              any(_same_values(tgt, t) for t in batch_targets)))

    model = bench.fresh_model()
    tracer = CallTracer(model, before_call=before, ops=set(LOSS_KINDS))
    try:
        with tracer.active():
            if s.train_step is not None:
                bench.train_one_step(model, bench.make_optimizer(model), batch)
            elif s.training_step is not None or s.loss_fn is not None:
                with torch.no_grad():
                    bench.compute_loss(model, batch)
    except SubjectError:
        pass
    return calls
