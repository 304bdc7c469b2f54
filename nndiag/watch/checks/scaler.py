"""watch.amp: GradScaler skips told apart from a collapsing loss scale.

A step where ``w.step`` was called but ``optimizer.step()`` did not run was skipped (``scaler.step``
skips it when it found inf/NaN in the gradients). Early in training that is normal while the scale
settles (Lightning#9799, DeepSpeed's startup "OVERFLOW!" lines) and is only noted. The scale
(``scaler.get_scale()``, read once per log interval) below ``amp_min_scale``, or more than
``amp_max_consecutive_skips`` skipped steps in a row, is a collapse: no update is applied any
more, which DeepSpeed aborts on (DeepSpeed#5426).
"""

from __future__ import annotations

from nndiag.watch.checks.base import Check, chart
from nndiag.watch.timeline import Timeline


class AmpCheck(Check):
    id = "watch.amp"
    uses = ("amp_min_scale", "amp_max_consecutive_skips")
    title = "Mixed precision (GradScaler)"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.has_scaler = False
        self._seen = 0
        self._run = 0
        self._run_start = 0
        self.skips = 0

    def judge(self, tl: Timeline) -> None:
        for i in range(self._seen, tl.steps):
            if tl.skipped[i]:
                self.skips += 1
                if self._run == 0:
                    self._run_start = i
                self._run += 1
                if self.has_scaler and self._run > self.cfg.amp_max_consecutive_skips:
                    self.emit("run", "fail", self._run_start, "", (
                        f"{self._run} optimizer steps in a row skipped since step {self._run_start}"
                        + (" by the GradScaler" if self.has_scaler else "") + ": the loss scale is "
                        "collapsing, no update is applied"), self._run,
                        self.cfg.amp_max_consecutive_skips, "consecutive_skips")
            else:
                self._run = 0
        self._seen = tl.steps
        for step, scale in tl.scale:
            if scale < self.cfg.amp_min_scale:
                self.emit("floor", "fail", step, "", (
                    f"the GradScaler's scale collapsed to {scale:g} by step {step} (floor "
                    f"{self.cfg.amp_min_scale:g}) after {self.skips} skipped steps"), scale,
                    self.cfg.amp_min_scale, "loss_scale")
                break

    def healthy_summary(self, tl: Timeline) -> str:
        if not self.has_scaler:
            return "no GradScaler watched" + (f"; {self.skips} step(s) without optimizer.step()"
                                              if self.skips else "")
        scale = f", scale {tl.scale[-1][1]:g}" if tl.scale else ""
        return f"{self.skips} step(s) skipped by the GradScaler (normal while the scale settles){scale}"

    def metrics(self, tl: Timeline) -> dict:
        return {"skipped_steps": self.skips, "scale": tl.scale[-1][1] if tl.scale else None}

    def data(self, tl: Timeline) -> dict:
        if not tl.scale:
            return {}
        return {"charts": [chart("GradScaler scale", [s for s, _ in tl.scale],
                                 {"scale": [v for _, v in tl.scale]}, ylabel="scale", log_y=True,
                                 limits=[("floor", self.cfg.amp_min_scale)])]}
