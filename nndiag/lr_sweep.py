"""The arithmetic of Smith's learning-rate range test, apart from any model: the exponential LR
schedule, the bias-corrected EMA smoothing, the divergence test and the suggestions.

Pure functions on lists of floats (numpy inside), so each number can be checked by hand. The
defaults and the algorithms follow the three tools users know (see docs/probes/lr-range.md):

* schedule ``lr_i = start * (end / start) ** (i / (n - 1))``: fastai ``SchedExp``, torch-lr-finder
  ``ExponentialLR``;
* smoothing ``avg = beta * avg + (1 - beta) * loss``, ``smoothed = avg / (1 - beta ** (i + 1))``:
  fastai ``AvgSmoothLoss`` and Lightning's ``_LRCallback`` (beta 0.98);
* stop when the smoothed loss exceeds ``4 x`` the best smoothed loss so far: fastai and Lightning;
* suggestions on the smoothed curve with the first ``n // 10`` and the last 5 points trimmed
  (fastai ``lr_find``): *steepest* descent measured against log LR (fastai ``steep``; Lightning
  measures it against linear LR, which drags the pick to the high end, Lightning #14248), fastai's
  *valley* (its default) and *minimum / 10*.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np


def exp_lrs(start: float, end: float, num: int) -> list[float]:
    """``num`` learning rates spaced evenly in log scale from ``start`` to ``end`` (both included)."""
    if num < 2:
        raise ValueError("an LR sweep needs at least 2 steps")
    if not (0 < start < end):
        raise ValueError(f"need 0 < start < end, got start={start}, end={end}")
    return [start * (end / start) ** (i / (num - 1)) for i in range(num)]


class EmaSmoother:
    """Bias-corrected exponential moving average (fastai ``AvgSmoothLoss``, Lightning ``lr_find``)."""

    def __init__(self, beta: float = 0.98) -> None:
        if not 0 <= beta < 1:
            raise ValueError(f"beta must lie in [0, 1), got {beta}")
        self.beta = beta
        self.avg = 0.0
        self.count = 0

    def update(self, value: float) -> float:
        """Add ``value``; return the smoothed value so far."""
        self.count += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * value
        return self.avg / (1 - self.beta ** self.count)


def ema_smooth(values: Sequence[float], beta: float = 0.98) -> list[float]:
    """The bias-corrected EMA of ``values`` at every point."""
    s = EmaSmoother(beta)
    return [s.update(float(v)) for v in values]


def has_diverged(smoothed: float, best: float, factor: float) -> bool:
    """True when ``smoothed`` exceeds ``factor`` x ``best`` (fastai/Lightning), or is not finite.

    For a best loss at or below zero (log-likelihood losses can be negative) "factor times" has no
    meaning; the same rise is measured as ``smoothed - best > (factor - 1) * |best|``, which equals
    ``smoothed > factor * best`` whenever ``best > 0``.
    """
    if not math.isfinite(smoothed):
        return True
    return smoothed - best > (factor - 1) * abs(best)


def suggestion_window(n: int, num_it: int, skip_start: int | None = None, skip_end: int = 5) -> tuple[int, int]:
    """``[lo, hi)`` of the points the suggestions look at: fastai trims ``num_it // 10`` at the
    start and 5 at the end. When the sweep stopped early and too little is left, trim less (at least
    5 points remain when there are 5)."""
    lo = num_it // 10 if skip_start is None else skip_start
    hi = n - skip_end
    if hi - lo < 5:
        lo, hi = max(0, min(lo, n - 5)), n
    return lo, hi


def steepest_index(lrs: Sequence[float], losses: Sequence[float]) -> int:
    """Index of the steepest descent of ``losses`` against log LR (central differences)."""
    x = np.log(np.asarray(lrs, dtype=float))
    y = np.asarray(losses, dtype=float)
    if len(y) < 2:
        return 0
    grad = np.gradient(y, x)
    return int(np.argmin(grad))


def valley_index(losses: Sequence[float]) -> int:
    """fastai's ``valley``: the longest strictly decreasing run (longest decreasing subsequence),
    then the point 1/2 of the way into its middle third: ``start + sec + sec / 2`` with
    ``sec = length / 3``."""
    n = len(losses)
    if n == 0:
        return 0
    lds = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    return max_start + int(sections) + int(sections / 2)


def minimum_index(losses: Sequence[float]) -> int:
    """Index of the lowest loss."""
    return int(np.argmin(np.asarray(losses, dtype=float)))


@dataclass
class SweepCurve:
    """One LR range test: what was tried and seen, and why it stopped."""

    lrs: list[float] = field(default_factory=list)  # LR of the reference group at each step
    losses: list[float] = field(default_factory=list)  # raw loss of each step (before its update)
    smoothed: list[float] = field(default_factory=list)
    # "end" (every LR tried), "diverged" (smoothed > factor x best), "nonfinite" (NaN/Inf loss),
    # "blowup" (after a clear descent the median raw loss is back above its untrained level)
    stop: str = "end"
    num_it: int = 0  # the planned number of steps

    @property
    def diverged_at(self) -> float | None:
        """The LR at which the sweep stopped because the loss diverged (None when it did not)."""
        return self.lrs[-1] if self.stop != "end" and self.lrs else None


def record_step(curve: SweepCurve, smoother: EmaSmoother, best: list[float], lr: float, loss: float,
                factor: float) -> bool:
    """Add one step to ``curve``; return True when the sweep must stop (the loss diverged).

    ``best`` is a one-element list holding the best smoothed loss so far (updated in place).
    A non-finite raw loss stops at once (its smoothed value is recorded as NaN).
    """
    curve.lrs.append(float(lr))
    curve.losses.append(float(loss))
    if not math.isfinite(loss):
        curve.smoothed.append(float("nan"))
        curve.stop = "nonfinite"
        return True
    sm = smoother.update(loss)
    curve.smoothed.append(sm)
    if len(curve.smoothed) == 1 or sm < best[0]:
        best[0] = sm
    if len(curve.smoothed) > 1 and has_diverged(sm, best[0], factor):
        curve.stop = "diverged"
        return True
    return False


def running_median(values: Sequence[float], window: int = 5) -> list[float]:
    """Centred running median (shorter at the ends): a spike-proof view of the raw losses."""
    x = np.asarray(values, dtype=float)
    h = window // 2
    return [float(np.median(x[max(0, i - h): i + h + 1])) for i in range(len(x))]


NOISE_SIGMAS = 2.0  # a fall or rise must exceed this many robust SDs of the untrained losses


def start_level(raw: Sequence[float], k: int) -> tuple[float, float]:
    """(median, robust SD = 1.4826 x MAD) of the first ``k`` raw losses: the untrained level and its
    batch-to-batch noise. A fall or a rise smaller than ``NOISE_SIGMAS`` of that noise is not one
    (on trained weights the loss is ~1e-3 and its batch-to-batch spread as large)."""
    head = np.asarray(raw[:k], dtype=float)
    med = float(np.median(head))
    return med, 1.4826 * float(np.median(np.abs(head - med)))


class BlowupWatch:
    """Stops a sweep once the loss has clearly blown up, without waiting for the lagging EMA.

    The untrained level is the median raw loss of the first ``start_k`` steps; the sweep has
    descended once the trailing median of ``window`` raw losses fell ``min_descent`` (relative)
    below it, and has blown up once that trailing median is back above the untrained level. On the
    reference CNN and MLP this ends the sweep 1-2 decades of LR before the 4 x best rule, or where
    that rule never fires (a cross-entropy that plateaus at a few units after the blow-up).
    """

    def __init__(self, start_k: int, min_descent: float, window: int = 5) -> None:
        self.start_k, self.min_descent, self.window = max(1, start_k), min_descent, window
        self.raw: list[float] = []
        self.start: float | None = None
        self.noise = 0.0
        self.descended = False

    def update(self, loss: float) -> bool:
        """Add a raw loss; True when the sweep should stop."""
        self.raw.append(loss)
        if len(self.raw) == self.start_k:
            self.start, self.noise = start_level(self.raw, self.start_k)
        if self.start is None or len(self.raw) < self.window:
            return False
        trailing = float(np.median(self.raw[-self.window:]))
        if self.start - trailing >= max(self.min_descent * abs(self.start), NOISE_SIGMAS * self.noise):
            self.descended = True
        return self.descended and trailing > self.start + NOISE_SIGMAS * self.noise


@dataclass(frozen=True)
class Suggestions:
    """The suggested LRs and the landmarks of the curve the verdict uses.

    The suggestions follow fastai on the smoothed curve. The landmarks for the verdict are read off
    the raw losses through a 5-point running median instead, because the EMA with beta 0.98 averages
    about 50 steps (4 decades of LR at 100 steps over 1e-7..10): on the reference models the smoothed
    curve shows a third of the real fall and crosses 4 x its best one to two decades after the raw
    loss has blown up, or never (measured in docs/probes/lr-range.md).
    """

    steepest: float | None
    valley: float | None
    minimum_div10: float | None
    lr_at_min: float | None  # LR where the smoothed loss was lowest (whole curve)
    descent: float  # relative fall from the start level to the lowest running median of raw losses
    start_level: float  # median raw loss over the trimmed start (the untrained level)
    lr_blowup: float | None  # first LR past the lowest point where the median loss is back above start
    window: tuple[int, int]
    noise: float = 0.0  # robust SD of the untrained losses
    lr_descent_start: float | None = None  # first LR where the median loss fell 10% of its total fall
    lr_at_median_min: float | None = None  # LR of the lowest running median of raw losses


def suggest(curve: SweepCurve, skip_start: int | None = None, skip_end: int = 5,
            median_window: int = 5) -> Suggestions:
    """Suggestions and landmarks from the finite part of the curve (see the module docstring)."""
    n_fin = next((i for i, s in enumerate(curve.smoothed) if not math.isfinite(s)), len(curve.smoothed))
    sm = curve.smoothed[:n_fin]
    raw = curve.losses[:n_fin]
    lrs = curve.lrs[:n_fin]
    if len(sm) < 2:
        return Suggestions(None, None, None, None, 0.0, raw[0] if raw else math.nan, None, (0, len(sm)))
    k = max(1, (curve.num_it or len(sm)) // 10)
    level, noise = start_level(raw, k)
    med = running_median(raw, median_window)
    i_low = int(np.argmin(med))
    fall = level - med[i_low]
    # a fall within the batch-to-batch noise of the untrained losses is no descent at all
    descent = fall / abs(level) if level != 0 and fall > NOISE_SIGMAS * noise else 0.0
    lr_blowup = next((lrs[i] for i in range(i_low + 1, len(med))
                      if med[i] > level + NOISE_SIGMAS * noise), None)
    lr_at_min = lrs[minimum_index(sm)]
    # where the descent starts: the first point whose median is a tenth of the total fall below
    # the untrained level (None without a descent)
    lr_start = next((lrs[i] for i in range(i_low + 1) if level - med[i] >= 0.1 * fall), None) \
        if descent > 0 else None
    lo, hi = suggestion_window(len(sm), curve.num_it or len(sm), skip_start, skip_end)
    w_lrs, w_sm = lrs[lo:hi], sm[lo:hi]
    if len(w_sm) < 2:
        return Suggestions(None, None, None, lr_at_min, descent, level, lr_blowup, (lo, hi), noise,
                           lr_start, lrs[i_low])
    return Suggestions(
        steepest=w_lrs[steepest_index(w_lrs, w_sm)],
        valley=w_lrs[min(valley_index(w_sm), len(w_sm) - 1)],
        minimum_div10=w_lrs[minimum_index(w_sm)] / 10,
        lr_at_min=lr_at_min,
        descent=descent,
        start_level=level,
        lr_blowup=lr_blowup,
        window=(lo, hi),
        noise=noise,
        lr_descent_start=lr_start,
        lr_at_median_min=lrs[i_low],
    )
