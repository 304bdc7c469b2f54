"""watch.loss (spikes, divergence) and watch.plateau, judged on the flushed loss series.

Spikes follow OLMo-core: a step's loss more than ``spike_sigma`` standard deviations above the mean
of the previous ``spike_window`` steps, after ``spike_warmup`` steps. They are notes (severity
pass): a lone spike is common in healthy runs. Divergence compares block medians (one block per
log interval): the loss has diverged when a block's median exceeds ``divergence_factor`` times the
best block median so far *and* gives back more than half of the progress made since the first
block. The onset is the first step of that block above the halfway level. A plateau is
``plateau_steps`` steps without a 1% improvement of the best block median: a warning while the
loss is above ``plateau_high`` of the first block's, a note ("converged") below it.
"""

from __future__ import annotations

import math
from collections import deque

from nndiag.watch.checks.base import Check, chart, finite, median, thin
from nndiag.watch.timeline import Timeline


class _Blocks:
    """Block medians of the loss, one block per ``size`` steps, computed once each."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.medians: list[tuple[int, float]] = []  # (first step of the block, median)

    def update(self, tl: Timeline) -> list[tuple[int, float]]:
        new = []
        while (len(self.medians) + 1) * self.size <= tl.steps:
            start = len(self.medians) * self.size
            m = median(tl.loss[start:start + self.size])
            self.medians.append((start, m))
            new.append((start, m))
        return new


class LossCheck(Check):
    id = "watch.loss"
    uses = ("spike_sigma", "spike_window", "spike_warmup", "divergence_factor", "log_every")
    title = "Loss spikes and divergence"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.blocks = _Blocks(config.log_every)
        self.best = math.inf
        self.first: float | None = None
        self.spikes: list[int] = []
        self._window: deque[float] = deque(maxlen=config.spike_window)
        self._sum = 0.0
        self._sq = 0.0
        self._seen = 0

    def judge(self, tl: Timeline) -> None:
        self._spikes(tl)
        for start, m in self.blocks.update(tl):
            if not math.isfinite(m):
                continue
            if self.first is None:
                self.first = m
            if self.best < math.inf and m > self.cfg.divergence_factor * self.best \
                    and m - self.best > 0.5 * (self.first - self.best) and self.first > self.best:
                level = self.best + 0.5 * (self.first - self.best)
                block = tl.loss[start:start + self.blocks.size]
                onset = start + next((i for i, v in enumerate(block) if not v <= level), 0)
                self.emit("diverged", "fail", onset, "", (
                    f"the loss diverged at step {onset}: median {m:.4g} over steps {start}-"
                    f"{start + self.blocks.size - 1}, {m / self.best:.1f}x the best {self.best:.4g}"
                    + _lr_note(tl, onset)), m, self.cfg.divergence_factor * self.best, "loss_median")
            self.best = min(self.best, m)

    def _spikes(self, tl: Timeline) -> None:
        for i in range(self._seen, tl.steps):
            v = tl.loss[i]
            if not math.isfinite(v):
                continue
            w = self._window
            n = len(w)
            if i >= self.cfg.spike_warmup and n >= 10:
                mean = self._sum / n
                std = math.sqrt(max(self._sq / n - mean * mean, 0.0))
                if std > 0 and v > mean + self.cfg.spike_sigma * std:
                    self.spikes.append(i)
                    if len(self.spikes) <= 5:  # notes, not verdicts; keep the report short
                        self.emit(("spike", i), "pass", i, "", f"loss spike at step {i}: {v:.4g}, "
                                  f"{(v - mean) / std:.1f} sigma above the last {n} steps", v,
                                  mean + self.cfg.spike_sigma * std, "loss")
            if n == w.maxlen:
                old = w[0]
                self._sum -= old
                self._sq -= old * old
            w.append(v)
            self._sum += v
            self._sq += v * v
        self._seen = tl.steps

    def healthy_summary(self, tl: Timeline) -> str:
        vals = finite(tl.loss)
        if not vals:
            return f"{tl.steps} steps, no loss given (call w.step(loss) to watch it)"
        spikes = f", {len(self.spikes)} spike(s)" if self.spikes else ", no spike"
        return f"loss {vals[0]:.4g} -> {vals[-1]:.4g} over {tl.steps} steps{spikes}"

    def metrics(self, tl: Timeline) -> dict:
        vals = finite(tl.loss)
        return {"steps": tl.steps, "spikes": len(self.spikes),
                "first_loss": vals[0] if vals else None, "last_loss": vals[-1] if vals else None}

    def data(self, tl: Timeline) -> dict:
        x, ys = thin(list(range(tl.steps)), {"loss": tl.loss})
        marks = [(f"spike {s}", s) for s in self.spikes[:5]]
        marks += [(e.message.split(":")[0], e.step) for e in self.events if e.severity != "pass"]
        return {"charts": [chart("Loss per step", x, ys, ylabel="loss",
                                 log_y=_positive(tl.loss), marks=marks)],
                "spike_steps": self.spikes, "block_medians": self.blocks.medians}


class PlateauCheck(Check):
    id = "watch.plateau"
    uses = ("plateau_steps", "plateau_high", "log_every")
    title = "Plateau"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.blocks = _Blocks(config.log_every)
        self.best = math.inf
        self.best_step = 0
        self.first: float | None = None

    def judge(self, tl: Timeline) -> None:
        for start, m in self.blocks.update(tl):
            if not math.isfinite(m):
                continue
            if self.first is None:
                self.first = m
            if m < self.best * 0.99:
                self.best, self.best_step = m, start
            end = start + self.blocks.size
            if end - self.best_step >= self.cfg.plateau_steps:
                high = self.best > self.cfg.plateau_high * self.first
                sev = "warn" if high else "pass"
                what = "not learning" if high else "converged?"
                self.emit("plateau", sev, self.best_step, "", (
                    f"plateau since step {self.best_step}: no 1% improvement of the median loss "
                    f"({self.best:.4g}, first {self.first:.4g}) over {end - self.best_step} steps: {what}"),
                    self.best, self.cfg.plateau_high * self.first, "loss_median")

    def healthy_summary(self, tl: Timeline) -> str:
        if self.first is None:
            return "not enough steps to judge"
        return (f"no plateau: best median loss {self.best:.4g} at step {self.best_step}, "
                f"{tl.steps - self.best_step} step(s) before the end (a plateau is "
                f"{self.cfg.plateau_steps} without a 1% improvement)")

    def metrics(self, tl: Timeline) -> dict:
        return {"best_median_loss": self.best if math.isfinite(self.best) else None,
                "best_step": self.best_step}

    def data(self, tl: Timeline) -> dict:
        med = self.blocks.medians
        return {"charts": [chart("Median loss per log interval", [s for s, _ in med],
                                 {"median loss": [m for _, m in med]}, ylabel="loss",
                                 log_y=_positive([m for _, m in med]))]}


def _positive(values) -> bool:
    vals = finite(values)
    return bool(vals) and min(vals) > 0 and max(vals) / min(vals) > 30


def _lr_note(tl: Timeline, step: int) -> str:
    note = tl.nearest_lr_event(step)
    return f"; {note}" if note else ""
