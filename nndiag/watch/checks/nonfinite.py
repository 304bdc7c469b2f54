"""watch.nan: a non-finite loss or gradient, with the op or module that produced it.

The core trips this check the moment the every-step flag turns (before ``optimizer.step()`` when
syncing every step) and hands it the replay's producer; at each log interval the check also scans
the flushed series for non-finite values the per-step sync did not see (a longer sync interval on
CUDA). Steps the GradScaler skipped are left to ``watch.amp``: their infinities are expected.
"""

from __future__ import annotations

import math

from nndiag.watch.checks.base import Check, chart, thin
from nndiag.watch.timeline import Timeline


class NanCheck(Check):
    id = "watch.nan"
    uses = ("norm_every",)
    title = "Non-finite loss and gradients"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.first_step: int | None = None
        self._scanned = 0
        self.amp = False  # set by the core when a GradScaler is watched

    def trip(self, step: int, stage: str, where: str, detail: str) -> None:
        """Record the first non-finite value and its producer (from the replay)."""
        if self.first_step is not None:
            return
        self.first_step = step
        place = f" in {where}" if where else ""
        msg = f"first non-finite {stage}{place} at step {step}" + (f": {detail}" if detail else "")
        self.emit("nan", "fail", step, where, msg, metric="first_non_finite")

    def judge(self, tl: Timeline) -> None:
        for i in range(self._scanned, tl.steps):
            if self.first_step is not None:
                break
            if tl.skipped[i] and self.amp:
                continue
            if tl.has_loss[i] and not math.isfinite(tl.loss[i]):
                self.trip(i, "loss", "", f"the loss is {tl.loss[i]}")
            elif tl.measured[i] and not math.isfinite(tl.grad_norm[i]):
                self.trip(i, "gradient", "", "a gradient norm is non-finite")
        self._scanned = tl.steps

    def healthy_summary(self, tl: Timeline) -> str:
        return f"loss and gradients finite over {tl.steps} steps"

    def metrics(self, tl: Timeline) -> dict:
        return {"steps": tl.steps, "first_non_finite_step": self.first_step}


    def data(self, tl: Timeline) -> dict:
        x = [i for i in range(tl.steps) if tl.measured[i] or tl.has_loss[i]]
        ys = {"loss": [tl.loss[i] for i in x], "gradient norm": [tl.grad_norm[i] for i in x]}
        xs, ys = thin(x, ys)
        marks = [(f"first non-finite (step {self.first_step})", self.first_step)] \
            if self.first_step is not None else []
        return {"charts": [chart("Loss and global gradient norm (gaps: non-finite or not measured)",
                                 xs, ys, log_y=True, marks=marks)]}
