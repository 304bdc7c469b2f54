"""Is dropout what stops the batch from being fitted? For a classifier that learns but did not fit
its batch within the budget: the same model, from the same initialisation, is fitted with every
dropout module's ``p`` set to 0; when that run fits, each dropout module is switched back on
alone and the fitted model scores the batch through it (train mode, several masks).

The measured quantity is a module's *retention*: the share of the gap from chance to 100% accuracy
that the fitted model keeps with only that module dropping. On the zoo (docs/probes/overfit.md)
healthy dropout layers keep 0.62-1.0 of it (heavy dropout, p 0.5 on the inputs, keeps the least);
``nn.Dropout(0.9)`` in front of the output layer, p given as TensorFlow's keep probability, keeps
0.23-0.25. A layer that wipes out most of what the network can learn, on the very batch it learned,
is why the batch cannot be fitted in train mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from nndiag.probe import ProbeContext
from nndiag.probes.overfit.fitting import FitRun, fit_batch, fit_inputs, score_now
from nndiag.seeding import fork_seeded

if TYPE_CHECKING:
    from nndiag.probes.overfit import OverfitConfig

#: Forward passes (dropout masks) over which a module's accuracy is averaged.
MASKS = 20


@dataclass(frozen=True)
class DropoutCheck:
    """The dropout-off fit and, when it fitted, each dropout module's retention."""

    off_steps: int  # steps of the dropout-off run
    off_fitted: bool
    retention: dict[str, tuple[float, float, float]]  # module -> (p, accuracy, retention)

    def worst(self) -> tuple[str, float, float, float] | None:
        """(module, p, accuracy, retention) of the module keeping the least, or None."""
        if not self.retention:
            return None
        name = min(self.retention, key=lambda k: self.retention[k][2])
        return (name, *self.retention[name])


def dropout_modules(model: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """The model's dropout modules (nn.Dropout, Dropout1d/2d/3d, AlphaDropout, ...) with p > 0."""
    return [(name, m) for name, m in model.named_modules()
            if isinstance(m, torch.nn.modules.dropout._DropoutNd) and float(m.p) > 0]


def check_dropout(ctx: ProbeContext, cfg: OverfitConfig, run: FitRun) -> DropoutCheck | None:
    """Fit the batch again with dropout off (same seed, same batch) and measure each dropout
    module's retention; None when the model has no dropout module or the run is not a classifier."""
    if run.scorer is None or run.scorer.chance >= 1.0:
        return None
    batch, targets, n, nndiag_step = fit_inputs(ctx, cfg)
    model = ctx.bench.fresh_model()
    drops = dropout_modules(model)
    if not drops:
        return None
    rates = {name: float(m.p) for name, m in drops}
    for _, m in drops:
        m.p = 0.0
    opt = ctx.bench.make_optimizer(model)
    with fork_seeded(ctx.seed):
        off = fit_batch(cfg, ctx, model, opt, batch, targets, n, nndiag_step, observe=False)
        if not off.fitted_by:
            return DropoutCheck(len(off.curve), False, {})
        retention = {}
        forward = lambda m: ctx.bench.forward(m, batch)  # noqa: E731
        chance = run.scorer.chance
        flags = [m.training for m in model.modules()]
        model.train()
        try:
            for name, m in drops:
                m.p = rates[name]
                acc = sum(score_now(model, forward, run.scorer)[1] for _ in range(MASKS)) / MASKS
                m.p = 0.0
                retention[name] = (rates[name], acc, (acc - chance) / (1.0 - chance))
        finally:
            for m, flag in zip(model.modules(), flags):
                m.training = flag
    return DropoutCheck(len(off.curve), True, retention)


def describe(check: DropoutCheck) -> dict[str, Any]:
    """The check's metrics."""
    worst = check.worst()
    return {"dropout_off_steps": check.off_steps, "dropout_off_fitted": check.off_fitted,
            "dropout_worst_p": worst[1] if worst else None,
            "dropout_retention": worst[3] if worst else None}
