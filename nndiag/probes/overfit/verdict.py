"""The verdict of a finished run that did not fit the batch: the numbers it reads (loss drop,
late progress, accuracy gain, constant baseline), the decision, and the blow-up of a run at a fixed
learning rate (read by lr-range)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from nndiag.probes.overfit.fitting import FitRun, median

if TYPE_CHECKING:
    from nndiag.probes.overfit import OverfitConfig


def measures(run: FitRun, cfg: OverfitConfig) -> dict[str, Any]:
    """The numbers the verdict reads, from the run (all recorded as metrics).

    ``drop``: the share of the gap from the initial loss to the floor closed by the end of the run
    (median of the last 10 losses); ``late_progress``: the share of that gap closed over the last
    ``plateau_window`` steps; ``accuracy_gain``: the share of the gap from chance to 100% accuracy
    closed (mean of the last scores); ``moved``: the loss's range over the run relative to its
    initial value; ``baseline_gain``: the share of the gap from the best constant prediction's loss
    to the floor closed.
    """
    finite = [c for c in run.curve if math.isfinite(c)]
    initial = run.curve[0]
    end = median(finite[-10:])
    gap = initial - run.floor
    m: dict[str, Any] = {"end_loss": end, "drop": (initial - end) / gap if gap > 0 else None}
    w = int(cfg.plateau_window)
    if gap > 0 and len(finite) >= w + 10:
        m["late_progress"] = (median(finite[-w - 10:-w]) - end) / gap
    else:
        m["late_progress"] = None
    m["moved"] = (max(finite) - min(finite)) / max(abs(initial), 1e-12)
    m["below_floor"] = bool(run.floor_known and gap > 0 and end < run.floor - 0.01 * gap)
    if run.scorer is not None and run.accs and run.scorer.chance < 1.0:
        k = max(1, min(10, len(run.accs) // 3))
        acc = sum(run.accs[-k:]) / k
        m["accuracy"] = acc
        m["accuracy_gain"] = (acc - run.scorer.chance) / (1.0 - run.scorer.chance)
        earlier = run.accs[:-k][-k:]
        m["accuracy_late_gain"] = (acc - sum(earlier) / len(earlier)) if earlier else None
    if run.baseline is not None and run.baseline[0] - run.floor > 0:
        m["constant_baseline_loss"] = run.baseline[0]
        m["baseline_gain"] = (run.baseline[0] - end) / (run.baseline[0] - run.floor)
    return m


def decide(run: FitRun, m: dict[str, Any], cfg: OverfitConfig) -> str:
    """The verdict of a finished, finite run that did not fit the batch: one of ``fail-drop``,
    ``fail-accuracy``, ``fail-stalled``, ``fail-baseline``, ``fail-still``, ``pass-plateau`` or
    ``skip``. Only a run of the whole step budget is ever failed: a time cut is a skip."""
    if run.cut_by_time:
        return "skip"
    drop, late = m["drop"], m["late_progress"]
    plateaued = late is not None and late < cfg.plateau_progress
    gain = m.get("accuracy_gain")
    if gain is not None:
        loss_flat = drop is None or drop < cfg.min_drop or m["below_floor"]
        if gain < cfg.min_accuracy_gain and loss_flat:
            return "fail-accuracy" if drop is None or m["below_floor"] or drop >= cfg.min_drop \
                else "fail-drop"
        base = m.get("baseline_gain")
        if gain < cfg.min_accuracy_gain and base is not None and base < cfg.min_drop:
            return "fail-baseline"  # the loss fell only to the class prior's: nothing else learned
        acc_flat = m.get("accuracy_late_gain") is None or m["accuracy_late_gain"] <= 0.01
        if gain < cfg.stall_accuracy_gain and plateaued and acc_flat:
            return "fail-stalled"
        return "skip"
    if run.floor_known and drop is not None:
        if drop < cfg.min_drop:
            return "fail-drop"
        if m.get("baseline_gain") is not None and m["baseline_gain"] < cfg.min_drop:
            return "fail-baseline"
        return "skip"
    if m["moved"] < cfg.still_limit:
        return "fail-still"
    if drop is not None and drop >= cfg.converged_drop and plateaued:
        return "pass-plateau"
    return "skip"


def fixed_lr_blowup(curve: list[float]) -> int | None:
    """The step (from 1) at which a run at a fixed LR blew up, or None: the loss ended above where
    it started (median of the last 10) after peaking above 10x its start, or became non-finite
    right after rising above its start. A loss that spikes and recovers, or turns NaN from a low
    value (an overflowing op, not the LR), is no blow-up."""
    if not curve or not math.isfinite(curve[0]) or curve[0] <= 0:
        return None
    start = curve[0]
    finite = [c for c in curve if math.isfinite(c)]
    nonfinite = len(finite) < len(curve)
    end = median(finite[-10:]) if finite else math.inf
    rose = nonfinite and len(finite) >= 3 and finite[-1] > start and finite[-1] > finite[-2] > finite[-3]
    if not (rose or (end > start and max(finite) > 10 * start)):
        return None
    low = min(range(len(finite)), key=finite.__getitem__)
    return next((i + 1 for i in range(low, len(finite)) if finite[i] > start), len(finite) + 1)
