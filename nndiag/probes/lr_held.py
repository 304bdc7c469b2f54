"""What the configured learning rate does when it is held, for the lr-range verdict.

The range test spends one step at each LR, so it misses what an LR does over hundreds of steps.
Two readings of the overfit probe's fitting run (one batch, the configured LR, up to 300 steps;
computed once and shared) fill that gap, and one extra measurement decides when the sweep cannot:

* :func:`relapse`: the highest loss after the run first fell clearly below its start, relative
  to that start. An LR past the stability limit descends for a few steps, then throws the weights
  off (a spike to 3.98-64x the start on the zoo's LR-too-high bugs); healthy runs stay at or below
  1.04x their start (docs/probes/lr-range.md);
* :func:`held_drop`: how far the run fell below its start, relative to it (healthy runs >= 0.36,
  the LR-too-low bugs <= 0.06);
* :func:`rescue`: when that run stalls and the sweep's curve is flat (plain SGD needs hundreds of
  steps, which a 100-step sweep over 8 decades never gives one LR), the same fresh model is
  trained on the same batch at 10x and 100x the configured LR: when one of them makes the loss
  fall by half, the configured LR is what holds training back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from nndiag.probe import ProbeContext


def _finite(values: Sequence[float]) -> list[float]:
    return [float(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v)]


def relapse(curve: Sequence[float], min_descent: float) -> float | None:
    """The highest finite loss after the run first fell ``min_descent`` (relative) below its
    start, divided by the start; None when it never fell that far or the start is not a positive
    finite number (a log-likelihood that can go negative has no "times its start")."""
    if not curve or not isinstance(curve[0], (int, float)) or not math.isfinite(curve[0]) \
            or curve[0] <= 0:
        return None
    start = float(curve[0])
    first = next((i for i, v in enumerate(curve) if math.isfinite(v) and v <= (1 - min_descent) * start),
                 None)
    if first is None:
        return None
    return max(_finite(curve[first:])) / start


def held_drop(curve: Sequence[float]) -> float | None:
    """``(start - lowest) / |start|`` over the finite losses of the run (None without a finite,
    nonzero start)."""
    fin = _finite(curve)
    if not curve or not fin or not math.isfinite(curve[0]) or curve[0] == 0:
        return None
    return (float(curve[0]) - min(fin)) / abs(float(curve[0]))


@dataclass(frozen=True)
class Rescue:
    """A run at ``factor`` x the configured LR: its losses and whether it fell by ``drop``."""

    factor: float
    curve: list[float]
    fell: bool

    @property
    def steps(self) -> int:
        """Steps taken (the run ends once the loss has fallen by the asked share)."""
        return len(self.curve)


def rescue(ctx: ProbeContext, factors: Sequence[float], steps: int, drop: float) -> list[Rescue]:
    """Train a fresh model (the run seed's weights) on the first batch at each of ``factors`` x
    the configured LR, every group scaled alike, for up to ``steps`` steps each, stopping a run
    once its loss has fallen ``drop`` (relative) below its start, and stopping the ladder at the
    first factor that gets there. Step-counted, never timed, so its verdict does not depend on
    the machine's load. Computed once per run and settings (shared)."""
    def compute() -> list[Rescue]:
        from nndiag.probes.lr_range import _group_lrs, _set_group_lrs

        bench = ctx.bench
        batch = bench.first_batch()
        out = []
        for factor in factors:
            model = bench.fresh_model()
            opt = bench.make_optimizer(model)
            base = _group_lrs(opt)
            if base is None:
                break
            _set_group_lrs(opt, [lr * factor for lr in base])
            curve: list[float] = []
            for _ in range(int(steps)):
                loss = bench.train_one_step(model, opt, batch)
                curve.append(loss)
                if not math.isfinite(loss) or (curve[0] > 0 and loss <= (1 - drop) * curve[0]):
                    break
            fell = math.isfinite(curve[-1]) and curve[0] > 0 and curve[-1] <= (1 - drop) * curve[0]
            out.append(Rescue(float(factor), curve, fell))
            if fell:
                break
        return out

    return ctx.shared(("lr_rescue", tuple(factors), int(steps), float(drop)), compute)
