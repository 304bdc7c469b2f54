"""Are gradients cleared between the user's ``train_step`` calls: the share ``a`` of the previous
step's gradient left in the next one (0: cleared, 1: accumulated)."""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

import torch

from nndiag.probe import Outcome, ProbeContext
from nndiag.probes.updates.params import grads_of, name_list
from nndiag.seeding import fork_seeded

if TYPE_CHECKING:
    from nndiag.probes.updates import UpdatesConfig


def check_zero_grad(cfg: UpdatesConfig, ctx: ProbeContext, batch, out: Outcome) -> None:
    """With the user's ``train_step``: call it twice on model A and once on a gradient-free copy
    B of A after its first call, and fail when the second call's gradient keeps more than
    ``accumulation_limit`` of the first (zero_grad missing)."""
    bench = ctx.bench
    model_a = bench.fresh_model()
    opt_a = bench.make_optimizer(model_a)
    with fork_seeded(ctx.seed):
        bench.train_one_step(model_a, opt_a, batch)
    g1 = grads_of(model_a)
    if all(g is None for g in g1.values()):
        out.data["zero_grad_check"] = "pass: train_step leaves no gradient behind (set to None)"
        out.metric("accumulated_fraction", 0.0)
        return
    try:
        model_b = copy.deepcopy(model_a)
    except Exception as exc:  # noqa: BLE001 - a model that cannot be copied: say so
        out.finding("pass", f"Could not check that train_step clears gradients: the model cannot be "
                 f"deep-copied ({type(exc).__name__}: {exc}).", where="<train_step>")
        return
    for p in model_b.parameters():
        p.grad = None
    with fork_seeded(ctx.seed):
        bench.train_one_step(model_a, opt_a, batch)
    g2 = grads_of(model_a)
    opt_b = bench.make_optimizer(model_b)
    with fork_seeded(ctx.seed):
        bench.train_one_step(model_b, opt_b, batch)
    gb = grads_of(model_b)
    names = [n for n in g1 if g1[n] is not None and g2.get(n) is not None and gb.get(n) is not None]
    if not names:
        out.finding("pass", "Could not check that train_step clears gradients: after its second call no "
                 "parameter holds a gradient to compare.", where="<train_step>")
        return
    a, residual, per_param = accumulation(g1, g2, gb, names)
    out.metric("accumulated_fraction", a)
    out.metric("zero_grad_residual", residual)
    out.data["zero_grad_check"] = {"accumulated_fraction": a, "residual": residual,
                                   "per_parameter": per_param}
    if not math.isfinite(a) or not math.isfinite(residual):
        out.finding("pass", "Could not check that train_step clears gradients: the gradients are not finite "
                 "(see the nan probe).", where="<train_step>")
        return
    if residual > cfg.residual_tolerance:
        closure = isinstance(opt_a, torch.optim.LBFGS)
        why = ("LBFGS evaluates its closure several times per step (the closure clears the "
               "gradients each time), so the gradients left behind are not one step's"
               if closure else "Gradient clipping, scaling or randomness not driven by torch's "
               "generator changes the gradients between calls")
        # Not decided is not a problem found: a fact, with the numbers.
        out.finding("pass", f"Could not tell whether train_step clears gradients: after a second "
                    f"call on the same batch the gradient is neither the fresh gradient nor the "
                    f"fresh gradient plus the previous one (relative residual {residual:.2g} > "
                    f"{cfg.residual_tolerance:g}). {why}.", where="<train_step>", value=residual,
                    limit=cfg.residual_tolerance, metric="zero_grad_residual")
        out.data["zero_grad_check"]["decided"] = False
        return
    if a > cfg.accumulation_limit:
        stuck = [n for n, v in per_param.items() if v > cfg.accumulation_limit]
        part = (f"all {len(per_param)} parameter tensors" if len(stuck) == len(per_param)
                else f"{len(stuck)} of {len(per_param)} parameter tensors ({name_list(stuck, cfg.max_names)})")
        out.fail(f"train_step does not clear gradients between steps: after a second call on the "
                 f"same batch, {part} hold the previous step's gradient plus the new one "
                 f"(fraction of the previous gradient kept: {a:.2f}, limit "
                 f"{cfg.accumulation_limit}). Each update then uses the sum of all past "
                 "gradients. Call optimizer.zero_grad() before loss.backward() in train_step "
                 "(or switch this check off with check_zero_grad=False if it accumulates on "
                 "purpose).", where="<train_step>", value=a, limit=cfg.accumulation_limit,
                 metric="accumulated_fraction")

def accumulation(g1: dict, g2: dict, gb: dict, names: list[str]) -> tuple[float, float, dict]:
    """Least-squares ``a`` in ``g2 - gB = a * g1`` over ``names`` (0: cleared, 1: accumulated),
    the relative residual ``|g2 - gB - a g1| / (|g1| + |gB|)``, and ``a`` per parameter."""
    per = {}
    num = den = 0.0
    for n in names:
        d = (g2[n] - gb[n]).double().flatten()
        x = g1[n].double().flatten()
        xx = float(x @ x)
        num += float(d @ x)
        den += xx
        if xx > 0:
            per[n] = float(d @ x) / xx
    if den == 0:
        return 0.0, 0.0, per
    a = num / den
    res2 = scale2 = 0.0
    for n in names:
        r = (g2[n] - gb[n]).double() - a * g1[n].double()
        res2 += float((r * r).sum())
        scale2 += float(g1[n].double().norm() + gb[n].double().norm()) ** 2
    residual = math.sqrt(res2) / max(math.sqrt(scale2), 1e-300)
    return a, residual, per
