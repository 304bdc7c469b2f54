"""``dead-neurons``: ReLU units that never activate on the probe batches and stay that way.

Reads the shared activation pass (:mod:`nndiag.activation_trace`), which sees ``nn.ReLU`` modules
and ``torch.relu``/``F.relu``/``x.relu()``/``F.relu6`` calls alike. A unit (a Linear feature, a Conv
channel, a recurrent hidden unit) is inactive when its input is positive in no observation over at
least 256 samples.

A snapshot at initialisation cannot decide: on the healthy zoo a quarter to a half of a layer's
ReLU units are inactive at PyTorch's default init (squeeze-excitation bottlenecks, SqueezeNet,
VGG's classifier), while the born-dead bugs have every unit of a layer inactive. So when a layer
is above ``remeasure_fraction`` at initialisation, the probe trains a fresh model for ``steps``
steps with the user's own optimizer and step on the probe batches, measures again, and judges the
units that were inactive at initialisation *and still are* (born dead and staying dead). It also
measures the same architecture with PyTorch's default initialisation, so the message says whether
the init or the architecture is the cause. Only ``relu``/``relu6`` can be dead: the leaky family
(``leaky_relu``, ``elu``, ``gelu``, ``silu`` ...) keeps a gradient for negative inputs, so its
inactive units are recorded as a fact, never a problem. Bands measured on the zoo:
docs/probes/dead-neurons.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from nndiag.activation_sites import HARD_ZERO
from nndiag.activation_trace import (
    activations_after_steps,
    default_init_activations,
    trace_or_skip,
)
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold

_SOURCE = "measured on the zoo: docs/probes/dead-neurons.md"


@dataclass(frozen=True)
class DeadNeuronsConfig:
    """Settings of the dead-neurons probe."""

    samples: int = threshold(
        256, "own choice: at least 256 samples when the data has them",
        "samples pulled from the data for the activation pass")
    max_active_fraction: float = threshold(
        0.0, "own choice ('units that never activate'); SageMaker Debugger uses 0.01",
        "a unit is inactive when its input is positive in at most this fraction of its observations")
    remeasure_fraction: float = threshold(
        0.2, f"{_SOURCE} (healthy layers at init: up to 59%; the re-measure costs {10} steps)",
        "re-measure after a few training steps when a layer's inactive fraction at init is above this")
    steps: int = threshold(
        10, f"{_SOURCE} (after 5 and 20 steps the still-inactive fractions are the same)",
        "training steps (the user's optimizer and step) before the second measurement")
    fail_fraction: float = threshold(
        0.5, f"{_SOURCE} (healthy zoo layers still inactive after the steps: up to 40%, a toy "
        "squeeze-excitation bottleneck 62%; born-dead bugs: 100%); TheDeepChecker and SageMaker "
        "Debugger also flag a layer above 50%",
        "fail when more than this fraction of a layer is inactive at init and still after the steps "
        "while PyTorch's default init leaves at most default_init_fraction inactive (a layer with no "
        "live unit at all always fails)")
    default_init_fraction: float = threshold(
        0.2, f"{_SOURCE} (architectures whose default init leaves more inactive, such as "
        "squeeze-excitation bottlenecks and SqueezeNet, train)",
        "a partly dead layer is blamed on the initialisation only when the default init of the same "
        "architecture leaves at most this fraction of it inactive (or init_excess fewer)")
    init_excess: float = threshold(
        0.5, f"{_SOURCE} (a narrow layer's default-init fraction moves in steps of 1/width)",
        "...or when at least this fraction more of the layer is inactive than at the default init")
    collapsed_layers_fraction: float = threshold(
        0.5, f"{_SOURCE} (deep narrow stack: 10 of 16 layers with one live unit; healthy zoo at "
        "most 1 of 6, a squeeze-excitation gate)",
        "a layer left with one live unit fails when more than this fraction of the ReLU layers are")
    min_distinct_samples: int = threshold(
        32, "own measurement (docs/probes/dead-neurons.md): on fewer inputs a live unit is often "
        "inactive by chance", "below this many distinct inputs a layer above fail_fraction only warns, "
        "unless it is 100% dead")


class DeadNeuronsProbe(Probe):
    """Per layer, the fraction of ReLU units inactive at initialisation and still after k steps."""

    id = "dead-neurons"
    cost = 60  # the order of a check: cheapest first
    hint = 'dead ReLUs often come from a too-large learning rate or a negative bias init'
    description = "ReLU units that never activate on the probe batches and stay dead while training."
    Config = DeadNeuronsConfig

    def charts(self, result):
        """The dead fraction per ReLU layer, with the warn and fail limits: nndiag.charts data."""
        from nndiag import chartkit

        return chartkit.charts_or_note(chartkit.fraction_chart(result, self.config, ("dead_fraction", "fraction"),
                                                              title="Dead units per layer", what="dead"), result)

    def requires(self):
        """The shared activation pass over ``samples`` samples."""
        from nndiag.activation_trace import DEFAULT_LEVELS
        from nndiag.passes import ActivationPass

        return [ActivationPass(int(self.config.samples), DEFAULT_LEVELS)]

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        trace = trace_or_skip(ctx, out, cfg.samples)
        sites = [s for s in trace.by_family("relu") if s.active is not None]
        if not sites:
            fused = (f" The gates of {', '.join(trace.fused_recurrent)} (LSTM/GRU) run in one fused "
                     "kernel and cannot be watched; their units cannot die the way ReLU units do."
                     if trace.fused_recurrent else "")
            out.skip("no ReLU-family activation (nn.ReLU, torch.relu, F.relu, F.relu6, x.relu(), "
                     "leaky variants) runs in the forward pass, so no unit can be dead." + fused)
        few = trace.distinct_samples is not None and trace.distinct_samples < cfg.min_distinct_samples
        n_seen = trace.distinct_samples if trace.distinct_samples is not None else trace.samples
        init_dead = {s.label: self._dead_mask(s) for s in sites}
        hard = [s for s in sites if s.op in HARD_ZERO]
        candidates = [s for s in hard
                      if float(init_dead[s.label].float().mean()) > cfg.remeasure_fraction]
        after, baseline, why_not = self._second_look(ctx, candidates)
        remeasured = {id(s) for s in candidates}  # Site holds tensors: compare by identity
        rows = []
        worst_init = worst_still = 0.0
        total_units = total_dead = 0
        for site in sites:
            mask = init_dead[site.label]
            dead = int(mask.sum())
            frac = dead / site.units if site.units else 0.0
            is_hard = site.op in HARD_ZERO
            row = {"layer": site.label, "where": site.where, "op": site.op, "units": site.units,
                   "dead": dead, "dead_fraction": frac, "observations": site.observations,
                   "leaky": not is_hard,
                   "active_fraction": (site.active.float() / max(site.observations, 1)).tolist()}
            if id(site) in remeasured and after is not None and site.label in after:
                still = int((mask & after[site.label]).sum())
                row["still_dead"] = still
                row["still_dead_fraction"] = still / site.units
            if id(site) in remeasured and baseline is not None and site.label in baseline:
                row["default_init_dead_fraction"] = float(baseline[site.label].float().mean())
            rows.append(row)
            if is_hard:
                total_units += site.units
                total_dead += dead
                worst_init = max(worst_init, frac)
                # Not re-measured: at most this many are still dead (an upper bound).
                worst_still = max(worst_still, row.get("still_dead_fraction", frac))
        # Layers left with one live unit (of three or more): when most ReLU layers are like that,
        # the main path is a chain of single numbers (the deep narrow collapse, Lu et al. 2019);
        # one such layer in a side branch (a squeeze-excitation gate) is not.
        hard_rows = [r for r in rows if not r["leaky"]]
        one_live = [r for r in hard_rows if "still_dead" in r and r["units"] >= 3
                    and r["units"] - r["still_dead"] <= 1]
        self._chain_collapsed = len(one_live) > cfg.collapsed_layers_fraction * len(hard_rows)
        out.metric("one_live_unit_layers", len(one_live))
        for site, row in zip(sites, rows):
            self._judge(out, site, row, few, n_seen, after is not None, why_not)
        out.data["layers"] = [{k: v for k, v in r.items() if k != "active_fraction"} for r in rows]
        out.data["active_fraction"] = {r["layer"]: r["active_fraction"] for r in rows}
        out.metric("layers", len(rows))
        out.metric("units", total_units)
        out.metric("dead_units", total_dead)
        out.metric("worst_dead_fraction", worst_init)
        out.metric("worst_still_dead_fraction", worst_still)
        out.metric("remeasured_after_steps", self._steps_run if after is not None else 0)
        out.metric("samples", trace.samples)
        if trace.distinct_samples is not None:
            out.metric("distinct_samples", trace.distinct_samples)
        where_worst = max(rows, key=lambda r: (not r["leaky"], r.get("still_dead_fraction",
                                                                       r["dead_fraction"])))
        if after is not None and candidates:
            still_total = sum(r.get("still_dead", 0) for r in rows)
            out.summary = (f"{still_total} of {total_units} ReLU units inactive at init and still "
                           f"after {self._steps_run} steps ({total_dead} at init); worst "
                           f"{where_worst['layer']} "
                           f"{where_worst.get('still_dead_fraction', where_worst['dead_fraction']):.0%}")
        else:
            out.summary = (f"{total_dead} of {total_units} ReLU units inactive over {trace.samples} "
                           f"samples in {len(rows)} layer(s); worst {where_worst['layer']} "
                           f"{where_worst['dead_fraction']:.0%}")

    _steps_run = 0
    _chain_collapsed = False

    def _dead_mask(self, site):
        limit = self.config.max_active_fraction * site.observations
        return site.active <= limit if limit > 0 else site.active == 0

    def _second_look(self, ctx: ProbeContext, candidates):
        """(still-dead masks after the steps, default-init masks, why the steps could not run)."""
        if not candidates:
            return None, None, ""
        cfg = self.config
        after = baseline = None
        why_not = ""
        try:
            steps = activations_after_steps(ctx, cfg.samples, cfg.steps)
            self._steps_run = steps.steps
            after = {s.label: self._dead_mask(s) for s in steps.trace.by_family("relu")
                     if s.active is not None}
        except SubjectError as exc:  # e.g. an LBFGS optimizer that needs a closure
            why_not = exc.message
        try:
            base = default_init_activations(ctx, cfg.samples)
            baseline = {s.label: self._dead_mask(s) for s in base.by_family("relu")
                        if s.active is not None}
        except SubjectError:
            baseline = None
        return after, baseline, why_not

    def _judge(self, out: Outcome, site, row: dict, few: bool, n_seen: int, remeasured: bool,
               why_not: str) -> None:
        cfg = self.config
        dead, frac = row["dead"], row["dead_fraction"]
        if dead == 0 or frac <= cfg.remeasure_fraction:
            return
        what = (f"{site.label}: {dead} of {site.units} units ({frac:.0%}) never had a positive input "
                f"over {site.observations:,} observations at initialisation")
        if row["leaky"]:
            out.finding("pass", f"{what}. {site.op} keeps a gradient for negative inputs, so these "
                        "units are not dead: they still learn.", where=site.where, value=frac,
                        metric="leaky_inactive_fraction")
            return
        base = row.get("default_init_dead_fraction")
        base_note = ""
        if base is not None:
            blame = frac > cfg.fail_fraction and (base <= cfg.default_init_fraction
                                                  or frac - base >= cfg.init_excess)
            base_note = (f" PyTorch's default init of the same architecture leaves {base:.0%} "
                         "inactive" + (", so the initialisation is the cause." if blame else "."))
        if "still_dead_fraction" not in row:
            # The steps could not run (e.g. LBFGS needs a closure): judge the snapshot alone. Only a
            # layer with no live unit is certain: nothing before it gets a gradient through it.
            reason = f" (nndiag could not train a few steps to check: {why_not})" if why_not else ""
            if dead == site.units:
                out.fail(f"{what}: not one unit of the layer is alive, so no gradient passes "
                         f"through it{reason}.{base_note} {_CAUSES}", where=site.where, value=frac,
                         limit=cfg.fail_fraction, metric="still_dead_fraction")
            else:
                out.finding("pass", f"{what}{reason}. That is common at initialisation and most "
                            f"such units come alive once training starts.{base_note}",
                            where=site.where, value=frac, metric="dead_fraction")
            return
        still, sfrac = row["still_dead"], row["still_dead_fraction"]
        steps = self._steps_run
        total = still == site.units
        what_still = (f"{what}, and {still} ({sfrac:.0%}) are still inactive after {steps} training "
                      "step(s) with your optimizer")
        # A layer with no live unit passes no gradient at all. A partly dead one still trains
        # through its live units; it is a bug only when the init, not the architecture, did it.
        # A layer left with one live unit (of three or more) squeezes every sample through one
        # number: the born-dead collapse of deep narrow ReLU stacks (Lu et al. 2019).
        init_caused = base is not None and (base <= cfg.default_init_fraction
                                            or sfrac - base >= cfg.init_excess)
        collapsed = site.units - still <= 1 and site.units >= 3 and self._chain_collapsed
        bad = sfrac > cfg.fail_fraction and (total or collapsed or init_caused)
        if bad and (not few or total):
            if total:
                why = "not one unit of the layer is alive, so no gradient passes through it"
            elif collapsed:
                why = ("one live unit is left, as in most of the model's ReLU layers, so every "
                       "sample's information passes through a chain of single numbers, and the "
                       "dead units get no gradient to come back")
            else:
                why = (f"{site.op} passes no gradient to a unit whose input is never positive, so "
                       "these units are born dead and stay dead")
            out.fail(f"{what_still}: {why}.{base_note} {_CAUSES}",
                     where=site.where, value=sfrac, limit=cfg.fail_fraction,
                     metric="still_dead_fraction")
        elif bad:
            out.warn(f"{what_still}, but the data has only {n_seen} distinct input(s) (fewer than "
                     f"{cfg.min_distinct_samples}), too few to tell a dead unit from one these inputs "
                     f"do not reach. If these inputs are the whole training set, the units will never "
                     f"train.{base_note} {_CAUSES}", where=site.where, value=sfrac,
                     limit=cfg.fail_fraction, metric="still_dead_fraction")
        else:
            revived = dead - still
            normal = ("A minority of inactive units is normal" if sfrac <= cfg.fail_fraction else
                      "This architecture leaves that many inactive at its default init too")
            out.finding("pass", f"{what_still} ({revived} came alive). {normal}: the rest of the "
                        f"layer learns.{base_note}", where=site.where, value=sfrac,
                        metric="still_dead_fraction")


_CAUSES = ("Likely causes: a strongly negative bias or weight init, a deep narrow ReLU stack, "
           "unscaled inputs, or a ReLU where no activation belongs (e.g. on the output layer). "
           "Fixes: default (Kaiming) init with zero or small positive bias, wider layers or "
           "normalisation/residual connections, normalised inputs, or LeakyReLU/GELU.")


@hookimpl
def nndiag_register_probes():
    """Register the dead-neurons probe."""
    return [DeadNeuronsProbe]
