"""Do the frozen layers stop the model from fitting one batch? The params probe's counterfactual.

A frozen layer is a fact (a deliberately frozen backbone), not a problem. It becomes one when the
freezing is what keeps the model from learning: the overfit probe's fitting run (one batch, the
user's optimizer and learning rate, up to 300 steps; shared, computed once) did not fit the batch,
and the *same* run with the frozen parameters unfrozen does. On the zoo
(docs/probes/params.md) the healthy frozen ResNet backbone fits its batch frozen (7 steps), so the
counterfactual never runs there; the frozen random ``EmbeddingBag.from_pretrained`` table (which
freezes by default) leaves a linear head at 78% batch accuracy after 300 steps, and unfrozen the
same model fits the batch.

Run only when the cheap facts already point there (frozen weights that are fresh random draws, and
a fitting run that ended unfitted over its whole step budget), so a check pays for it only then.
A run cut by the wall-clock budget decides nothing (contract: machine load is never a verdict).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from nndiag.probe import ProbeContext
from nndiag.seeding import fork_seeded


@dataclass(frozen=True)
class FrozenFit:
    """The two fitting runs: frozen as the user built it, and with the frozen parameters trained."""

    frozen_steps: int
    frozen_accuracy: float | None  # the last batch accuracy of the frozen run (classifiers)
    frozen_drop: float  # how much of the initial loss the frozen run removed (0..1)
    unfrozen_steps: int  # steps the unfrozen run took to fit the batch


def frozen_layers_block_fit(ctx: ProbeContext) -> FrozenFit | None:
    """The counterfactual above; None when it does not apply or does not decide (the frozen run
    fitted, was cut by time, or the unfrozen run does not fit either)."""
    from nndiag.probes.overfit import OverfitConfig, shared_fit_run
    from nndiag.probes.overfit.fitting import fit_batch, fit_inputs

    cfg = OverfitConfig()  # the run lr-range reads too: the same shared run, computed once
    shared = shared_fit_run(ctx, cfg)
    run = shared.run
    if run is None or run.fitted_by or run.cut_by_time or len(run.curve) < run.max_steps:
        return None
    batch, targets, n, nndiag_step = fit_inputs(ctx, cfg)
    model = ctx.bench.fresh_model()
    thawed = [p for p in model.parameters() if not p.requires_grad]
    for p in thawed:
        p.requires_grad_(True)
    opt = ctx.bench.make_optimizer(model)
    _include(opt, thawed)
    with fork_seeded(ctx.seed):
        other = fit_batch(cfg, ctx, model, opt, batch, targets, n, nndiag_step, observe=False)
    if not other.fitted_by or other.cut_by_time:
        return None
    first, last = run.curve[0], min(run.curve)
    drop = (first - last) / first if first > 0 else 0.0
    return FrozenFit(len(run.curve), run.accs[-1] if run.accs else None, drop, len(other.curve))


def _include(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> None:
    """Add the thawed parameters the user's optimizer factory left out (one that builds over
    ``model.head.parameters()``), with the first group's settings."""
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    missing = [p for p in params if id(p) not in held]
    if missing:
        settings = {k: v for k, v in opt.param_groups[0].items() if k != "params"}
        opt.add_param_group({"params": missing, **settings})
