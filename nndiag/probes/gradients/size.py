"""Are the steps too large: the optimizer's step against the weights' norm (exploding gradients,
judged against a default-initialisation baseline, are in :mod:`.baseline`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nndiag.probe import Outcome
from nndiag.probes.gradients.summary import ParamSummary

if TYPE_CHECKING:
    from nndiag.probes.gradients import GradientsConfig


def check_steps_too_large(cfg: GradientsConfig, out: Outcome, params: list[ParamSummary], ndim: dict,
                          optimizer: str = "") -> None:
    """The optimizer's step against the weight's size, over the network's weights (median): a
    learning rate too high moves every layer by a large share of itself, while a single
    zero-initialised or 1e-6-scaled tensor (a ViT head, a class token, a layer scale) moves by
    "1000x its norm" in a healthy net and says nothing. LBFGS's step is a whole line search:
    not judged."""
    weights = [p for p in params if p.connected and ndim.get(p.name, 2) >= 2
               and p.max_step_update_ratio > 0]
    if not weights:
        return
    ratios = sorted(p.max_step_update_ratio for p in weights)
    r = ratios[len(ratios) // 2]
    worst = max(weights, key=lambda p: p.max_step_update_ratio)
    out.metric("median_update_ratio", r)
    out.metric("max_update_ratio", worst.max_step_update_ratio)
    if optimizer == "LBFGS":
        return
    lr = f"lr {worst.lr:g}" if worst.lr is not None else "the learning rate"
    msg = (f"One optimizer step moves the weights by {r:.3g} times their own norm (median over "
           f"{len(weights)} weight tensors of |w_after - w_before| / |w|; {worst.name} "
           f"{worst.max_step_update_ratio:.3g} with max |g| {worst.max_abs_grad:.3g}, {lr}): steps "
           "that large throw the weights around instead of descending. The learning rate is too "
           "high for this model and optimizer: lower it (see the lr-range probe); unscaled inputs "
           "or a summed loss make |g|, and with SGD the step, large too.")
    out.graded(msg, value=r, warn_limit=cfg.update_warn, fail_limit=cfg.update_fail,
               where=worst.name, metric="median_update_ratio")
