"""``dead-neurons``: ReLU-family units that never activate on the probe batches, per layer.

Reads the shared activation pass (:mod:`nndiag.activation_trace`), which sees ``nn.ReLU`` modules
and ``torch.relu``/``F.relu``/``x.relu()``/``F.relu6`` calls alike. A unit (a Linear feature, a Conv
channel, a recurrent hidden unit) is dead when its input is positive in no observation over at least
256 samples (issue 3); a layer warns above 20% dead units (torchdiag's warn level) and fails above 50%
(TheDeepChecker, SageMaker Debugger and torchdiag all flag a layer above 50%). Details, measurements
and the reasons for each number: docs/probes/dead-neurons.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from nndiag.activation_trace import HARD_ZERO, activation_trace
from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold


@dataclass(frozen=True)
class DeadNeuronsConfig:
    """Settings of the dead-neurons probe."""

    samples: int = threshold(
        256, "issue 3 (at least 256 samples when the data has them)",
        "samples pulled from the data for the activation pass")
    max_active_fraction: float = threshold(
        0.0, "issue 3 ('units that never activate'); SageMaker Debugger uses 0.01",
        "a unit is dead when its input is positive in at most this fraction of its observations")
    warn_fraction: float = threshold(
        0.2, "torchdiag (warn at 20% dead units)", "warn when a layer's dead fraction is above this")
    fail_fraction: float = threshold(
        0.5, "TheDeepChecker, SageMaker Debugger, torchdiag (layer flagged above 50%)",
        "fail when a layer's dead fraction is above this")
    min_distinct_samples: int = threshold(
        32, "own measurement (docs/probes/dead-neurons.md): on fewer inputs a live unit is often "
        "inactive by chance", "below this many distinct inputs only a layer that is 100% dead fails")


class DeadNeuronsProbe(Probe):
    """Per layer, the fraction of ReLU-family units whose input is never positive."""

    id = "dead-neurons"
    description = "ReLU-family units that never activate on the probe batches, per layer."
    Config = DeadNeuronsConfig

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        trace = activation_trace(ctx, cfg.samples)
        sites = [s for s in trace.by_family("relu") if s.active is not None]
        if not sites:
            fused = (f" The gates of {', '.join(trace.fused_recurrent)} (LSTM/GRU) run in one fused "
                     "kernel and cannot be watched; their units cannot die the way ReLU units do."
                     if trace.fused_recurrent else "")
            out.skip("no ReLU-family activation (nn.ReLU, torch.relu, F.relu, F.relu6, x.relu(), "
                     "leaky variants) runs in the forward pass, so no unit can be dead." + fused)
        few = trace.distinct_samples is not None and trace.distinct_samples < cfg.min_distinct_samples
        n_seen = trace.distinct_samples if trace.distinct_samples is not None else trace.samples
        rows = []
        worst = 0.0
        total_units = total_dead = 0
        for site in sites:
            limit = cfg.max_active_fraction * site.observations
            dead_mask = site.active <= limit if limit > 0 else site.active == 0
            dead = int(dead_mask.sum())
            frac = dead / site.units if site.units else 0.0
            hard = site.op in HARD_ZERO
            rows.append({"layer": site.label, "where": site.where, "op": site.op, "units": site.units,
                         "dead": dead, "dead_fraction": frac, "observations": site.observations,
                         "leaky": not hard,
                         "active_fraction": (site.active.float() / max(site.observations, 1)).tolist()})
            total_units += site.units
            total_dead += dead
            worst = max(worst, frac)
            self._judge(out, site, dead, frac, hard, few, n_seen)
        out.data["layers"] = [{k: v for k, v in r.items() if k != "active_fraction"} for r in rows]
        out.data["active_fraction"] = {r["layer"]: r["active_fraction"] for r in rows}
        out.metric("layers", len(rows))
        out.metric("units", total_units)
        out.metric("dead_units", total_dead)
        out.metric("worst_dead_fraction", worst)
        out.metric("samples", trace.samples)
        if trace.distinct_samples is not None:
            out.metric("distinct_samples", trace.distinct_samples)
        where_worst = max(rows, key=lambda r: r["dead_fraction"])
        out.summary = (f"{total_dead} of {total_units} ReLU-family units dead over {trace.samples} "
                       f"samples in {len(rows)} layer(s); worst {where_worst['layer']} "
                       f"{where_worst['dead_fraction']:.0%}")

    def _judge(self, out: Outcome, site, dead: int, frac: float, hard: bool, few: bool,
               n_seen: int) -> None:
        cfg = self.config
        if frac <= cfg.warn_fraction or dead == 0:
            return
        what = (f"{site.label}: {dead} of {site.units} units ({frac:.0%}) never had a positive input "
                f"over {site.observations:,} observations")
        causes = ("Likely causes: a strongly negative bias or weight init, unscaled inputs, a ReLU "
                  "where no activation belongs (e.g. on the output layer), or a learning rate that "
                  "pushed the layer negative. Fixes: default (Kaiming) init with zero or small positive "
                  "bias, normalised inputs, LeakyReLU/GELU, or a lower learning rate.")
        total = dead == site.units
        if not hard:
            out.warn(f"{what}. {site.op} keeps a small gradient for negative inputs, so the units are "
                     f"not dead, but they only ever work on their flat side. {causes}",
                     where=site.where, value=frac, limit=cfg.warn_fraction, metric="dead_fraction")
            return
        if frac > cfg.fail_fraction and (not few or total):
            out.fail(f"{what}: {site.op} passes no gradient to a unit whose input is never positive, "
                     f"so these units cannot learn. {causes}", where=site.where, value=frac,
                     limit=cfg.fail_fraction, metric="dead_fraction")
        elif few and frac > cfg.fail_fraction:
            out.warn(f"{what}, but the data has only {n_seen} distinct input(s) (fewer than "
                     f"{cfg.min_distinct_samples}), too few to tell a dead unit from one these inputs "
                     f"do not reach. If these inputs are the whole training set, the units will never "
                     f"train. {causes}", where=site.where, value=frac, limit=cfg.fail_fraction,
                     metric="dead_fraction")
        else:
            note = (f" The data has only {n_seen} distinct input(s), so some of these may just not be "
                    "reached by them." if few else "")
            out.warn(f"{what}: they get no gradient and cannot learn.{note} {causes}",
                     where=site.where, value=frac, limit=cfg.warn_fraction, metric="dead_fraction")


@hookimpl
def nndiag_register_probes():
    """Register the dead-neurons probe."""
    return [DeadNeuronsProbe]
