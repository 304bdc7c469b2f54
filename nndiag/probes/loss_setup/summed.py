"""A loss summed over the batch (reduction='sum', or a per-sample loss summed or scaled by the
batch size by hand): detected from the user's loss against the per-element loss, judged by the
optimizer (plain SGD steps grow with it, Adam-family optimizers divide it out)."""

from __future__ import annotations

import math
from typing import Any

from nndiag.probe import Outcome
from nndiag.probes.loss_setup.measure import LossMeasurement, single_call
from nndiag.probes.loss_setup.rules import loss_elements

#: Optimizers whose step does not grow with the loss scale (they divide by a running gradient
#: scale, or search along the direction): a summed loss is harmless with them.
SCALE_INVARIANT = {"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "Adagrad", "Adadelta",
                   "RMSprop", "Rprop", "LBFGS", "Adafactor"}


def check_reduction(out: Outcome, cfg: Any, measured: LossMeasurement) -> None:
    """A loss summed over the batch: reduction='sum', or a per-sample loss summed or scaled by
    the batch size by hand. Its gradient is batch-size times a mean loss's, so plain SGD
    behaves as with a learning rate that many times larger; Adam-family optimizers divide the
    scale out."""
    call = single_call(measured.per_batch)
    users = measured.user_losses
    if call is None or not users or not math.isfinite(call.per_element) \
            or call.per_element <= 0 or not math.isfinite(users[0]):
        return
    x = call.input
    n = int(x.shape[0]) if x.dim() else 1
    elements = loss_elements(call.op, x)
    scale = users[0] / call.per_element
    out.metric("loss_scale", scale)
    if call.params.get("reduction") == "sum":
        how = "reduction='sum'"
    elif n >= 2 and abs(scale / n - 1) < 0.05:
        how = f"a per-sample loss summed (or multiplied by the batch size {n})"
    elif elements >= 2 and elements != n and abs(scale / elements - 1) < 0.05:
        how = f"a loss summed over all {elements} elements"
    else:
        return
    if abs(scale) < 1.5:
        return  # the sum is divided again later (e.g. by the batch size): a mean after all
    out.metric("summed_over_batch", 1)
    opt = measured.optimizer_name
    msg = (f"The loss is summed over the batch ({how}): it is {scale:.3g}x the mean loss per "
           f"{'sample' if elements == n else 'element'}, so its gradients are {scale:.3g}x "
           "larger too and the learning rate acts that many times larger. ")
    if opt in SCALE_INVARIANT:
        out.finding("pass", msg + f"{opt} divides the gradient scale out, so this only changes "
                    "the printed loss (the summed ELBO of a VAE is written this way).",
                    where="<loss>", value=scale, metric="loss_scale")
        return
    step = measured.step_size
    effective = step * scale if step is not None else None
    if effective is not None:
        out.metric("effective_step_size", effective)
    fix = ("Use reduction='mean' (or divide by the batch size), or divide the learning rate "
           f"by {scale:.3g}.")
    if effective is not None and effective >= cfg.summed_sgd_fail_step:
        out.fail(msg + f"With {opt}, lr / (1 - momentum) = {step:.3g} becomes {effective:.3g} "
                 "on the per-sample gradient scale: steps that large throw the weights off "
                 "(a network tuned for a mean loss collapses to a constant output). " + fix,
                 where="<loss>", value=effective, limit=cfg.summed_sgd_fail_step,
                 metric="effective_step_size")
    else:
        out.warn(msg + f"With {opt or 'this optimizer'} the step size depends on it, and "
                 "changing the batch size changes the effective learning rate. " + fix,
                 where="<loss>", value=scale, limit=1.0, metric="loss_scale")
