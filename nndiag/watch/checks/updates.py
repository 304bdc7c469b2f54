"""watch.updates: update/weight ratios out of band, and parameters that never or no longer update.

On sample steps the weights are copied before ``optimizer.step()`` and compared after it
(:class:`~nndiag.watch.sampler.UpdateSampler`). A layer's ratio ``|dW| / |W|`` outside
[``update_ratio_low``, ``update_ratio_high``] for ``sustain`` samples in a row is reported. A
trainable parameter unchanged by ``frozen_samples`` sampled steps in a row never updated (when it
never changed) or stopped updating (when it had). A parameter that requires grad but is in no
parameter group of the optimizer is reported at step 0.
"""

from __future__ import annotations

import math

from nndiag.watch.checks.base import Check, chart
from nndiag.watch.timeline import Timeline

MAX_LAYERS_CHARTED = 8


class UpdatesCheck(Check):
    id = "watch.updates"
    uses = ("update_ratio_low", "update_ratio_high", "frozen_samples", "sample_every", "sustain")
    title = "Update/weight ratio and frozen parameters"

    def __init__(self, config) -> None:
        super().__init__(config)
        self._seen = 0
        self._run: dict[tuple[str, str], int] = {}
        self._onset: dict[tuple[str, str], int] = {}
        self.unchanged_runs: dict[str, int] = {}
        self.ever_changed: set[str] = set()
        self.last_change: dict[str, int] = {}
        self.unchanged_per_sample: list[list[str] | None] = []  # filled by the core
        self.all_params: list[str] = []

    def judge(self, tl: Timeline) -> None:
        for name in tl.never_in_optimizer:
            self.emit(("opt", name), "warn", 0, name, f"{name} requires grad but is in no parameter "
                      "group of the optimizer: it is never updated")
        lo, hi = self.cfg.update_ratio_low, self.cfg.update_ratio_high
        for j in range(self._seen, len(tl.samples)):
            step = tl.samples[j]
            for layer, values in tl.update_ratio.items():
                v = values[j] if j < len(values) else math.nan
                if not math.isfinite(v):
                    continue
                for kind, bad, level in (("low", 0 < v < lo, lo), ("high", v > hi, hi)):
                    key = (layer, kind)
                    if not bad:
                        self._run[key] = 0
                        continue
                    if not self._run.get(key):
                        self._onset[key] = step
                    self._run[key] = self._run.get(key, 0) + 1
                    if self._run[key] >= self.cfg.sustain:
                        self.emit(key, "warn", self._onset[key], layer, (
                            f"update/weight ratio of {layer} too {kind} since step {self._onset[key]}: "
                            f"{v:.2g} (band {lo:g}..{hi:g})"), v, level, "update_ratio")
            if j < len(self.unchanged_per_sample) and self.unchanged_per_sample[j] is not None:
                self._frozen(set(self.unchanged_per_sample[j]), step)
        self._seen = len(tl.samples)

    def _frozen(self, unchanged: set[str], step: int) -> None:
        if self.all_params and unchanged >= set(self.all_params):
            # nothing moved at all: a converged optimizer (LBFGS at its tolerance) or an LR of 0,
            # not one parameter left behind
            self.emit("all", "pass", step, "", f"no parameter changed at step {step} "
                      "(the optimizer converged, or the learning rate is 0)")
            return
        for name in self.all_params:
            if name not in unchanged:
                self.unchanged_runs[name] = 0
                self.ever_changed.add(name)
                self.last_change[name] = step
                continue
            self.unchanged_runs[name] = self.unchanged_runs.get(name, 0) + 1
            if self.unchanged_runs[name] >= self.cfg.frozen_samples:
                if name in self.ever_changed:
                    self.emit(("frozen", name), "warn", self.last_change[name], name,
                              f"{name} stopped updating after step {self.last_change[name]} "
                              "while other parameters still update")
                else:
                    self.emit(("frozen", name), "warn", 0, name,
                              f"{name} was never updated (unchanged on every sampled step while "
                              "other parameters change)")

    def healthy_summary(self, tl: Timeline) -> str:
        vals = [v for s in tl.update_ratio.values() for v in s if math.isfinite(v)]
        if not vals:
            return "no update sampled"
        return f"update/weight ratios {min(vals):.2g}..{max(vals):.2g} over {len(tl.samples)} samples"

    def metrics(self, tl: Timeline) -> dict:
        vals = [v for s in tl.update_ratio.values() for v in s if math.isfinite(v)]
        return {"min_update_ratio": min(vals) if vals else None,
                "max_update_ratio": max(vals) if vals else None}

    def data(self, tl: Timeline) -> dict:
        named = list(dict.fromkeys([e.where for e in self.events if e.where in tl.update_ratio]
                                   + list(tl.update_ratio)))[:MAX_LAYERS_CHARTED]
        if not named:
            return {}
        return {"charts": [chart("Update/weight ratio per layer", list(tl.samples),
                                 {k: tl.update_ratio[k] for k in named}, ylabel="|dW|/|W|",
                                 log_y=True, limits=[("low", self.cfg.update_ratio_low),
                                                     ("high", self.cfg.update_ratio_high)])]}
