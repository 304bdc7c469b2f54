"""How far one step moved the weights: a step too small to train, half-precision weights whose
update rounds away, and float16 weights under an optimizer whose eps rounds to 0."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from nndiag.precision import half_eps_groups
from nndiag.probe import Outcome
from nndiag.probes.updates.params import common_module, name_list

if TYPE_CHECKING:
    from nndiag.probes.updates import UpdatesConfig

FP16_TINY = float(torch.finfo(torch.float16).tiny * 2.0 ** -10)  # smallest subnormal: 5.96e-08


def check_step_size(cfg: UpdatesConfig, out: Outcome, rows: list[dict], dims: dict[str, int]) -> None:
    """How far one step moved the weights: the median over weight tensors (2+ dimensions) of
    |w_after - w_before| / |w_before|. A step that changes every weight by a millionth of
    itself (gradients clipped to 1e-6, float16 weights under a small SGD step) "changes"
    every parameter bit-wise yet trains nothing."""
    rel = sorted(r.get("relative_change", 0.0) if r["changed"] else 0.0 for r in rows
                 if r["requires_grad"] and r["changed"] is not None and dims.get(r["parameter"], 2) >= 2)
    if not rel:
        return
    med = rel[len(rel) // 2]
    out.metric("median_relative_change", med)
    if 0 < med < cfg.tiny_step_fail:  # 0: unchanged tensors, reported with their cause
        out.fail(f"One step changes the weights by a median {med:.2g} of their norm over "
                 f"{len(rel)} weight tensors (limit {cfg.tiny_step_fail:g}): that many steps later "
                 "the model is still where it started. Usual causes: gradients clipped to a tiny "
                 "max_norm, a learning rate far too small, float16 weights whose update rounds away "
                 "(keep float32 master weights: torch.autocast), or a loss scaled down by a huge "
                 "factor.", where="<model>", value=med, limit=cfg.tiny_step_fail,
                 metric="median_relative_change")

def check_half_rounding(cfg: UpdatesConfig, out: Outcome, rows: list[dict], dtypes: dict) -> None:
    """float16/bfloat16 weights whose step rounds away for most elements: the update is below
    the format's spacing (3 significant digits), so training stalls where float32 trains."""
    half = (torch.float16, torch.bfloat16)
    lost = [r for r in rows if r["requires_grad"] and dtypes.get(r["parameter"]) in half
            and r.get("changed_fraction", 0.0 if r["changed"] is False else 1.0) < 0.5
            and r["changed"] is not None]
    out.metric("half_rounded", len(lost))
    if lost:
        names = [r["parameter"] for r in lost]
        worst = min(r.get("changed_fraction", 0.0) for r in lost)
        out.fail(f"{len(lost)} half-precision parameter tensor(s) kept most of their elements "
                 f"bit-for-bit unchanged after one step (as few as {worst:.0%} moved): "
                 f"{name_list(names, cfg.max_names)}. In float16/bfloat16 an update smaller "
                 "than about 1/1000 of the weight rounds away. Keep float32 weights and use "
                 "torch.autocast for half-precision compute (or a GradScaler with fp16).",
                 where=common_module(names), value=worst, limit=0.5, metric="half_rounded")


def check_half_eps(cfg: UpdatesConfig, out: Outcome, opt, after) -> None:
    """float16 parameters stepped by an optimizer whose ``eps`` rounds to 0 in float16 (Adam/AdamW's
    default 1e-8, below half of float16's smallest subnormal 6e-8). The update divides by
    sqrt(v) + eps; v is float16 like the weights, and Adam's first v = (1 - beta2) * grad^2
    underflows to 0 wherever |grad| < 5.5e-3 (measured, beta2 = 0.999), so those elements step by
    Inf or NaN (measured on a float16 digits MLP, Adam lr 1e-3: all 4 parameter tensors NaN/Inf
    after one step; with eps=1e-4 every probe passes). Judged from the optimizer's settings, so it
    is named even on a batch where no gradient is that small."""
    groups = half_eps_groups(opt)
    held = {id(p) for g in groups for p in g["params"] if p.dtype == torch.float16}
    names = [n for n, p in after if id(p) in held]
    out.metric("half_eps", len(names))
    if not names:
        return
    eps = float(groups[0]["eps"])
    out.fail(f"{len(names)} float16 parameter tensor(s) are stepped by {type(opt).__name__} with "
             f"eps={eps:g}, which rounds to 0 in float16 (its smallest positive value is 6e-8): "
             f"{name_list(names, cfg.max_names)}. Where a gradient element is small (below 5.5e-3 "
             "for Adam's beta2=0.999) the second moment underflows to 0 too, so the update divides "
             "by 0 and the weight becomes Inf or NaN. Use eps=1e-4 with float16 weights, or keep "
             "float32 weights and run the forward under torch.autocast (--autocast).",
             where=common_module(names), value=eps, limit=FP16_TINY, metric="half_eps")
