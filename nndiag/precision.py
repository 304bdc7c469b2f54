"""Mixed precision for a check (``--autocast off|bf16|fp16``): the autocast context every forward
of the check runs under, and the GradScaler of nndiag's own training steps under fp16.

What runs under autocast: every forward and loss the Workbench computes (training steps, the
activation passes, the lr sweep, overfit, the nan replay), and the user's ``training_step`` and
``train_step`` calls. Backward runs outside it, as torch's AMP recipe says. Parameters and the
optimizer stay in their own dtype (float32 for a float32 model), which is the point of autocast.

With fp16 nndiag's own step scales the loss with a :class:`torch.amp.GradScaler` (one per
optimizer, as a training loop has), unscales the gradients before anyone reads them (so the
gradients probe sees true gradients), and when the scaled backward overflowed (the scaler halves
its scale and skips the update) it does the same step again at the lower scale. A step therefore
always ends in an update, as in fp32, unless the gradients overflow even unscaled (scale <= 1):
that is a real fp16 overflow and is reported as a non-finite gradient. A user's ``train_step``
gets autocast but no scaler: it does its own backward, used as written.

The user's model and optimizer are never touched: autocast is a thread-local mode entered and
left around each call, and the scalers belong to nndiag's optimizer copies.
"""

from __future__ import annotations

import weakref
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, ContextManager

import torch

from nndiag.errors import SubjectError, UsageError

MODES = ("off", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
FP16_MAX = float(torch.finfo(torch.float16).max)  # 65504: anything larger becomes Inf in float16
# A scaled step that overflowed is done again at half the scale until the scale falls below this:
# GradScaler starts at 2**16, so 17 tries take it from 65536 to 1 (then the overflow is real).
MIN_RETRY_SCALE = 1.0


@dataclass(frozen=True)
class Precision:
    """The precision a check runs in: ``mode`` off, bf16 or fp16, on ``device_type``."""

    mode: str = "off"
    device_type: str = "cpu"

    @property
    def enabled(self) -> bool:
        """True when forwards run under autocast."""
        return self.mode != "off"

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype (None when off)."""
        return DTYPES.get(self.mode)

    @property
    def uses_scaler(self) -> bool:
        """True when nndiag's own steps scale the loss (fp16, as torch's AMP recipe)."""
        return self.mode == "fp16"

    def autocast(self) -> ContextManager[Any]:
        """The context a forward runs in: ``torch.autocast(device_type, dtype)`` or nothing."""
        if not self.enabled:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def new_scaler(self) -> torch.amp.GradScaler:
        """A fresh GradScaler for one optimizer's run (default settings: scale 2**16)."""
        return torch.amp.GradScaler(self.device_type)

    def explain(self, error: SubjectError, exc: BaseException) -> SubjectError:
        """``error`` with its hint replaced by one on fp16 CPU kernels, for a RuntimeError raised under
        fp16 autocast on CPU: some CPU kernels have no float16 version (nn.LSTM's oneDNN kernel
        raises 'could not create a primitive descriptor', measured with torch 2.14; others say
        "not implemented for 'Half'")."""
        if self.mode != "fp16" or self.device_type != "cpu" or not isinstance(exc, RuntimeError) \
                or not any(mark in str(exc) for mark in _NO_HALF_KERNEL):
            return error
        return SubjectError(error.message, hint="This ran under --autocast fp16 on CPU, where some "
                            "kernels (nn.LSTM's) have no float16 version: use --autocast bf16 on CPU "
                            "(fp16 is for CUDA).")


OFF = Precision()
# What torch's CPU errors say when a kernel has no float16 version.
_NO_HALF_KERNEL = ("primitive descriptor", "not implemented for 'Half'")


class Scalers:
    """The GradScalers of one check: one per optimizer (a training run), none unless fp16."""

    def __init__(self, precision: Precision) -> None:
        self.precision = precision
        self._by_optimizer: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.redone = 0  # steps done again at a lower scale after a scaled backward overflowed

    def get(self, optimizer: torch.optim.Optimizer, *, closure: bool = False) -> torch.amp.GradScaler | None:
        """``optimizer``'s scaler, made on first use; None when the check does not scale (not
        fp16), the optimizer needs a closure (LBFGS: its closure recomputes an unscaled loss) or
        holds float16 weights (a ``.half()`` model: GradScaler refuses to unscale float16
        gradients, "Attempting to unscale FP16 gradients")."""
        if not self.precision.uses_scaler or closure or any(
                p.dtype == torch.float16 for g in optimizer.param_groups for p in g["params"]):
            return None
        if optimizer not in self._by_optimizer:
            self._by_optimizer[optimizer] = self.precision.new_scaler()
        return self._by_optimizer[optimizer]


def resolve_precision(mode: Any, device: str | torch.device, source: str = "--autocast") -> Precision:
    """The Precision for ``mode`` (None, "off", "bf16" or "fp16") on ``device``; UsageError when the
    mode is unknown or the device has no autocast. fp16 on CPU is allowed: torch supports it
    (matmuls and convolutions; see :meth:`Precision.explain` for the kernels that lack it)."""
    if mode is None or mode is False:
        return OFF
    text = str(mode).strip().lower()
    text = {"bfloat16": "bf16", "float16": "fp16", "half": "fp16", "none": "off", "": "off"}.get(text, text)
    if text not in MODES:
        raise UsageError(f"{source} must be one of {', '.join(MODES)}, got {mode!r}.",
                         hint="Write e.g. --autocast bf16 (CPU or CUDA) or --autocast fp16 (CUDA).")
    device_type = torch.device(device).type
    if text != "off" and not torch.amp.is_autocast_available(device_type):
        raise UsageError(f"{source} {text} was asked for, but torch has no autocast on {device_type}.",
                         hint="Use --autocast off on this device, or --device cpu/cuda.")
    return Precision(text, device_type)


def half_eps_groups(optimizer: Any) -> list[dict]:
    """The param groups of ``optimizer`` that hold float16 parameters and an ``eps`` that rounds to
    0 in float16: Adam/AdamW/RMSprop's default 1e-8 and Adagrad's 1e-10 are below half of float16's
    smallest subnormal (6e-8). Their update divides by sqrt(v) + eps, and v (float16, like the
    weights) underflows to 0 where the gradient is small (Adam's first v = 0.001 * grad^2 is 0 for
    |grad| < 5.5e-3, measured), so the step is Inf or NaN there."""
    out = []
    for group in getattr(optimizer, "param_groups", []):
        try:
            eps = float(group.get("eps"))
        except (TypeError, ValueError):  # no eps, or Adafactor's (None, 1e-3)
            continue
        if (eps > 0 and float(torch.tensor(eps, dtype=torch.float16)) == 0
                and any(p.dtype == torch.float16 for p in group["params"])):
            out.append(group)
    return out


def scaled_update(scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer,
                  apply: bool) -> tuple[bool, bool]:
    """``scaler.step`` and ``scaler.update`` after an unscaled backward; returns (skipped, retry).

    GradScaler has no public "this step was skipped" flag: a skip is seen as the scale going
    down in ``update()``. ``apply`` False (the caller's guard refused the gradients) skips the
    update and halves the scale, as the scaler does on an overflow. ``retry`` is True when the
    skip may come from the scaling itself (the new scale is still >= :data:`MIN_RETRY_SCALE`).
    """
    before = scaler.get_scale()
    if apply:
        scaler.step(optimizer)  # skips by itself when unscale_ found an Inf/NaN
        scaler.update()
    else:
        scaler.update(new_scale=before / 2)  # skip, and back off as the scaler would have
    after = scaler.get_scale()
    skipped = (not apply) or after < before
    return skipped, skipped and after >= MIN_RETRY_SCALE
