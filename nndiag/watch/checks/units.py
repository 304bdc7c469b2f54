"""watch.units (dead ReLU units) and watch.saturation (sigmoid/tanh units stuck at their limits).

Both read the per-site fractions sampled every ``sample_every`` steps (one training forward each,
:class:`~nndiag.watch.sampler.ActivationSampler`). A unit is dead on a sample when its input was
never positive over the whole batch; saturated when more than ``saturation_unit`` of its inputs
lie beyond +-``saturation_input``. With fewer than ``dead_min_observations`` inputs per
sample (a 4-point XOR batch) only a site that is entirely dead is reported, as in the dead-neurons
probe. A site is reported when its fraction stays above the warn level
(``fail`` level) for ``sustain`` samples in a row; the onset is the first of those samples, and the
message names the learning-rate event nearest to it (a jump, the end of a warm-up).
"""

from __future__ import annotations

import math

from nndiag.watch.checks.base import Check, chart
from nndiag.watch.timeline import Timeline

MAX_SITES_CHARTED = 8


class _FractionCheck(Check):
    series_name = "dead"
    noun = "dead"
    warn_attr = "dead_warn_fraction"
    fail_attr = "dead_fail_fraction"

    def __init__(self, config) -> None:
        super().__init__(config)
        self._seen = 0
        self._run: dict[str, int] = {}
        self._onset: dict[str, int] = {}

    def _series(self, tl: Timeline) -> dict[str, list[float]]:
        return getattr(tl, self.series_name)

    def judge(self, tl: Timeline) -> None:
        warn, fail = getattr(self.cfg, self.warn_attr), getattr(self.cfg, self.fail_attr)
        for j in range(self._seen, len(tl.samples)):
            step = tl.samples[j]
            for site, values in self._series(tl).items():
                if site.endswith("(model output)"):
                    continue  # an output activation saturating is the model growing confident
                v = values[j] if j < len(values) else math.nan
                if not math.isfinite(v):
                    continue
                few = tl.observations.get(site, 10**9) < self.cfg.dead_min_observations
                if v <= warn or (few and self.series_name == "dead" and v < 1.0):
                    self._run[site] = 0  # on a few inputs a live unit is often inactive by chance
                    continue
                if not self._run.get(site):
                    self._onset[site] = j
                self._run[site] = self._run.get(site, 0) + 1
                if self._run[site] >= self.cfg.sustain:
                    self._report(tl, site, values, self._onset[site], v, warn, fail)
        self._seen = len(tl.samples)

    def _report(self, tl, site, values, j0, v, warn, fail) -> None:
        onset = tl.samples[j0]
        start = next((x for x in values if math.isfinite(x)), math.nan)
        sev = "fail" if v > fail else "warn"
        if j0 == 0 or (math.isfinite(start) and start > warn):
            # already so at the first sample: a property of the initialisation or the data, which
            # the pre-training probes judge (nndiag check --probe dead-neurons / saturation)
            sev = "pass"
            msg = (f"{v:.0%} of the units of {site} are {self.noun} from the first sample (step "
                   f"{onset}) on: judged before training by `nndiag check`, not by the watch")
        else:
            event = tl.nearest_lr_event(onset)
            msg = (f"{v:.0%} of the units of {site} became {self.noun} at step {onset} (first "
                   f"sample: {start:.0%})" + (f"; nearest LR event: {event}" if event else ""))
        self.emit(site, sev, onset, site, msg, v, fail if sev == "fail" else warn,
                  f"{self.noun}_fraction")

    def healthy_summary(self, tl: Timeline) -> str:
        series = self._series(tl)
        if not series:
            return f"no {self.site_kind} seen in {len(tl.samples)} sample(s)"
        worst = max((max((x for x in v if math.isfinite(x)), default=0.0) for v in series.values()))
        return f"{len(series)} {self.site_kind} site(s), at most {worst:.0%} {self.noun} " \
               f"over {len(tl.samples)} samples"

    site_kind = "ReLU"

    def metrics(self, tl: Timeline) -> dict:
        return {"sites": len(self._series(tl)), "samples": len(tl.samples)}

    def data(self, tl: Timeline) -> dict:
        series = self._series(tl)
        named = list(dict.fromkeys([e.where for e in self.events] + list(series)))[:MAX_SITES_CHARTED]
        if not named:
            return {}
        ys = {k: series[k] for k in named}
        return {"charts": [chart(f"{self.noun.capitalize()} fraction per site", list(tl.samples),
                                 ys, ylabel=f"{self.noun} fraction",
                                 limits=[("warn", getattr(self.cfg, self.warn_attr))],
                                 marks=[(e.where, e.step) for e in self.events])]}


class UnitsCheck(_FractionCheck):
    id = "watch.units"
    uses = ("dead_warn_fraction", "dead_fail_fraction", "dead_min_observations", "sample_every", "sustain")
    title = "Dead ReLU units"


class SaturationCheck(_FractionCheck):
    id = "watch.saturation"
    uses = ("saturation_input", "saturation_unit", "saturation_warn_fraction", "dead_fail_fraction", "sample_every")
    title = "Saturated sigmoid/tanh units"
    series_name = "saturated"
    noun = "saturated"
    warn_attr = "saturation_warn_fraction"
    fail_attr = "dead_fail_fraction"  # 50%, as the saturation probe's fail level
    site_kind = "sigmoid/tanh"
