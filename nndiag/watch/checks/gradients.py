"""watch.gradients: per-layer gradients exploding or vanishing, with the step it started.

A layer's reference is the median of its gradient norm over the first two log intervals (its
"early" norm). At each later interval the block median is compared with it: above
``exploding_growth`` times the early norm (or above ``exploding_abs``) it is exploding. Vanishing
is relative to the layer nearest the loss (the last one with a gradient), as in AUTOTRAINER's
first/last-layer ratio: a layer whose norm, relative to its early norm, fell ``vanishing_ratio``
times further than the last layer's did (or below ``vanishing_abs``) is vanishing. Every layer's
gradient shrinks together when a run converges (the healthy XOR run ends at 8e-4 of its early
norm, docs/watch.md); only a fade that the layers near the loss do not share is a vanishing
gradient. A condition must hold
for ``sustain`` intervals in a row; the onset is the first step, in the first of those intervals,
past the level. Norms are the unscaled ones of the optimizer step (after ``scaler.unscale_``, read
in the optimizer's step pre-hook), so AMP scale changes do not move them.
"""

from __future__ import annotations

import math

from nndiag.watch.checks.base import Check, chart, median, thin
from nndiag.watch.timeline import Timeline

MAX_LAYERS_CHARTED = 8


class GradientsCheck(Check):
    id = "watch.gradients"
    uses = ("exploding_growth", "exploding_abs", "vanishing_ratio", "vanishing_abs", "sustain", "norm_every")
    title = "Gradient norms per layer"

    def __init__(self, config) -> None:
        super().__init__(config)
        self.early: dict[str, float] = {}
        self._run: dict[tuple[str, str], int] = {}  # consecutive bad blocks per (layer, kind)
        self._onset: dict[tuple[str, str], int] = {}
        self._blocks = 0

    def judge(self, tl: Timeline) -> None:
        size = self.cfg.log_every
        early_steps = 2 * size
        while (self._blocks + 1) * size <= tl.steps:
            start = self._blocks * size
            self._blocks += 1
            if start + size <= early_steps:
                continue
            medians = {}
            for layer, series in tl.layer_grad.items():
                if layer not in self.early:
                    self.early[layer] = median(series[:early_steps])
                e = self.early[layer]
                if math.isfinite(e) and e > 0:  # no gradient at all: watch.updates reports it
                    medians[layer] = median(series[start:start + size])
            ref = next((k for k in reversed(list(medians)) if math.isfinite(medians[k])), None)
            if ref is None:
                continue
            ref_fade = medians[ref] / self.early[ref]
            for layer, m in medians.items():
                if not math.isfinite(m):
                    continue
                e = self.early[layer]
                block = tl.layer_grad[layer][start:start + size]
                hi = min(self.cfg.exploding_growth * e, self.cfg.exploding_abs)
                lo = max(self.cfg.vanishing_ratio * e * min(ref_fade, 1.0), self.cfg.vanishing_abs)
                self._track(layer, "exploding", m > hi, block, start, lambda v: v > hi, m, hi, e)
                self._track(layer, "vanishing", m < lo, block, start, lambda v: v < lo, m, lo, e)

    def _track(self, layer, kind, bad, block, start, past, m, level, early) -> None:
        key = (layer, kind)
        if not bad:
            self._run[key] = 0
            return
        if self._run.get(key, 0) == 0:
            self._onset[key] = start + next((i for i, v in enumerate(block) if past(v)), 0)
        self._run[key] = self._run.get(key, 0) + 1
        if self._run[key] >= self.cfg.sustain:
            onset = self._onset[key]
            sev = "fail" if kind == "exploding" and m > self.cfg.exploding_abs else "warn"
            self.emit(key, sev, onset, layer, (
                f"gradients of {layer} {kind} since step {onset}: norm {m:.3g} vs {early:.3g} early "
                f"({m / early:.3g}x)"), m, level, f"grad_norm_{kind}")

    def healthy_summary(self, tl: Timeline) -> str:
        from nndiag.watch.checks.base import finite

        g = finite(tl.grad_norm)
        if not g:
            return "no gradient seen (no optimizer step ran)"
        return f"{len(tl.layer_grad)} layers; global grad norm {g[0]:.3g} -> {g[-1]:.3g}"

    def metrics(self, tl: Timeline) -> dict:
        from nndiag.watch.checks.base import finite

        g = finite(tl.grad_norm)
        return {"layers": len(tl.layer_grad), "first_grad_norm": g[0] if g else None,
                "last_grad_norm": g[-1] if g else None}

    def data(self, tl: Timeline) -> dict:
        x = [i for i in range(tl.steps) if tl.measured[i]]  # full norms are taken every norm_every
        flagged = [k[0] for k, n in self._run.items() if n]
        named = list(dict.fromkeys(
            [e.where for e in self.events] + flagged + list(tl.layer_grad)))[:MAX_LAYERS_CHARTED]
        pick = {name: [series[i] for i in x] for name, series in
                (("global", tl.grad_norm), *((k, tl.layer_grad[k]) for k in named))}
        xs, ys = thin(x, pick)
        return {"charts": [chart("Gradient norm per step (global and per layer)", xs, ys,
                                 ylabel="L2 norm", log_y=True,
                                 marks=[(e.where, e.step) for e in self.events])],
                "early_norm": self.early}
