"""Does gradient reach every parameter: parameters cut off from the loss, exactly-zero and vanishing
weight gradients, tiny bias/normalisation gradients, gradients shrinking towards the input, and
units kept identical by symmetric initialisation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nndiag.probe import Outcome, ProbeContext
from nndiag.probes.gradients.structure import biases_before_normalisation, identical_units
from nndiag.probes.gradients.summary import ParamSummary, graph_cut, name_list

if TYPE_CHECKING:
    from nndiag.probes.gradients import GradientsConfig


def check_disconnected(cfg: GradientsConfig, out: Outcome, params: list[ParamSummary],
                       own_step: bool) -> str:
    """Parameters that get no gradient: a pass fact when the user's train_step trained and
    cleared them, else a fail each, with where the graph is cut. Returns the summary's lead."""
    missing = [p for p in params if not p.connected]
    # With the user's train_step the gradients are read after it returns: a step that clears
    # some gradients on purpose (a GAN clearing the discriminator's before the generator's
    # step) leaves None behind. A parameter that changed was trained: a fact, not a fault.
    trained = [p.name for p in missing if own_step and p.changed]
    if trained:
        out.finding("pass", f"{len(trained)} parameter(s) hold no gradient after your train_step "
                    f"but changed in it, so the step trains them and clears their gradient: "
                    f"{name_list(trained)}.", where=trained[0], metric="grad_cleared_by_train_step",
                    value=len(trained))
    missing = [p.name for p in missing if p.name not in trained]
    out.metric("disconnected", len(missing))
    if not missing:
        return ""
    shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
    note = (" (read after your train_step: if it clears gradients at its end, clear them at "
            "its start instead)" if own_step else "")
    cut = graph_cut(params)
    for name in missing:
        out.fail(f"{name} requires grad but gets no gradient: it is not connected to the loss"
                 + (f" ({cut})" if cut else "") + ". Look for a .detach(), a layer defined but "
                 f"never called in forward, or an output that bypasses it{note}.", where=name,
                 metric="grad")
    return f"no gradient reaches {shown}" + (f"; {cut}" if cut else "")


def check_tiny_non_weights(cfg: GradientsConfig, ctx: ProbeContext, out: Outcome,
                           params: list[ParamSummary]) -> None:
    """Biases and normalisation parameters with a tiny gradient: facts, not failures."""
    if not params:
        return
    redundant = biases_before_normalisation(ctx)
    before_norm = [p.name for p in params if p.name in redundant]
    others = [p.name for p in params if p.name not in redundant]
    if before_norm:
        out.finding("pass", f"{name_list(before_norm)} feed(s) a normalisation layer, which subtracts "
                    "its mean: the gradient is zero by construction, so the bias is redundant "
                    "(bias=False saves the parameters).", where=before_norm[0],
                    value=min(p.max_abs_grad for p in params if p.name in redundant),
                    metric="max_abs_grad")
    if others:
        out.finding("pass", f"{len(others)} bias/normalisation parameter(s) get a gradient below "
                    f"{cfg.vanishing_max_abs:g} (or zero): {name_list(others)}. Usual when "
                    "what follows removes them (a BatchNorm reached through 1x1 convolutions, "
                    "attention key biases, which the softmax cancels) or for a zero-initialised "
                    "bias, which trains all the same; the weights are judged instead.",
                    where=others[0], value=min(p.max_abs_grad for p in params if p.name in others),
                    metric="max_abs_grad")


def check_zero_and_vanishing(cfg: GradientsConfig, out: Outcome, params: list[ParamSummary], top: float,
                             numels: dict | None = None, weights: list[str] | None = None) -> None:
    """Weights whose gradient is exactly zero (a pass fact when they are a small dead side path,
    else a fail) or tiny both absolutely and against the network's largest (a fail)."""
    limit, rel = cfg.vanishing_max_abs, cfg.vanishing_relative
    numels = numels or {}
    total = sum(numels.get(n, 0) for n in (weights or [])) or 1
    dead = [p for p in params if p.max_abs_grad == 0.0]
    share = sum(numels.get(p.name, 0) for p in dead) / total if numels else 1.0
    out.metric("dead_weight_share", share if dead else 0.0)
    if dead and share < cfg.dead_share:
        # a small dead side path (a squeeze-excitation block whose few ReLUs are all off at
        # initialisation: its gate is a constant) while the rest of the network trains
        names = [p.name for p in dead]
        out.finding("pass", f"{len(dead)} small weight tensor(s), {share:.1%} of the network's weights, "
                    f"get an exactly zero gradient at every step: {name_list(names)}. A dead side path "
                    "(e.g. a squeeze-excitation block whose few ReLUs are all inactive, leaving a "
                    "constant gate); the rest of the network trains.", where=names[0], value=share,
                    limit=cfg.dead_share, metric="dead_weight_share")
        params = [p for p in params if p.max_abs_grad != 0.0]
    for p in params:
        if p.max_abs_grad == 0.0:
            out.fail(f"The gradient of {p.name} is exactly zero at every step: nothing flows "
                     "back to it. Common causes: dead ReLUs in front of it, a zero-initialised "
                     "layer feeding a product, or an argmax/round in the path.",
                     where=p.name, value=0.0, limit=limit, metric="max_abs_grad")
        elif top > 0 and p.max_abs_grad < rel * top:
            out.fail(f"The gradient of {p.name} vanishes: max |g| = {p.max_abs_grad:.2g} < "
                     f"{limit:g} at every step, {p.max_abs_grad / top:.1g} of the largest weight "
                     f"gradient in the network ({top:.2g}). Use ReLU-family activations, a "
                     "normalisation layer or residual connections, or a better initialisation.",
                     where=p.name, value=p.max_abs_grad, limit=limit, metric="max_abs_grad")
        else:
            out.finding("pass", f"{p.name}: max |g| = {p.max_abs_grad:.2g}, small, but so is "
                        f"every gradient of the network (largest {top:.2g}): a loss on a small "
                        "scale, not a vanishing path.", where=p.name, value=p.max_abs_grad,
                        metric="max_abs_grad")


def check_ratio(cfg: GradientsConfig, out: Outcome, params: list[ParamSummary]) -> None:
    """Warn when the first weight's gradient norm is below ``vanishing_ratio`` of the last's."""
    # AUTOTRAINER compares the first and last layers' weights; biases are left out because a
    # small bias gradient says little about the flow through the layer.
    # Weight matrices only (``weight``, and ``weight_ih_l0``/``weight_hh_l0`` of recurrent layers).
    weights = [p for p in params if p.name.rsplit(".", 1)[-1].startswith("weight")
               and p.grad_norm > 0]
    if len(weights) < 2:
        return
    first, last = weights[0], weights[-1]
    ratio = first.grad_norm / last.grad_norm
    out.metric("first_last_grad_ratio", ratio)
    if ratio < cfg.vanishing_ratio:
        out.warn(f"Gradients shrink towards the input: |g| of {first.name} is {ratio:.2g} times "
                 f"that of {last.name} (limit {cfg.vanishing_ratio:g}). Deep sigmoid/tanh "
                 "stacks do this; ReLU, normalisation or residual connections help.",
                 where=first.name, value=ratio, limit=cfg.vanishing_ratio,
                 metric="first_last_grad_ratio")


def check_symmetry(ctx: ProbeContext, out: Outcome) -> None:
    """Layers whose units start identical and get identical gradients: a fail each."""
    tied = identical_units(ctx)
    out.metric("identical_unit_layers", len(tied))
    for name, units in tied:
        out.fail(f"All {units} units of {name} start identical and get identical gradients, so "
                 "every step changes them alike and they stay copies of one unit: the layer works "
                 "as if it had one unit (broken symmetry). Initialise the weights randomly "
                 "(PyTorch's default, or nn.init.kaiming_uniform_/xavier_uniform_), not to a "
                 "constant.", where=name, value=units, metric="identical_units")
