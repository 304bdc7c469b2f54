"""``saturation``: sigmoid, tanh and softmax outputs stuck at their limits, per layer.

Reads the shared activation pass (:mod:`nndiag.activation_trace`), which sees ``nn.Sigmoid``/
``nn.Tanh``/``nn.Softmax`` modules and ``torch.sigmoid``/``F.tanh``/``x.softmax()`` calls alike, and
the hidden units of ``nn.RNN``. An observation of a sigmoid/tanh unit is saturated when its input is
beyond +-5 (DeepDiagnosis); a unit is saturated when more than 85% of its observations are
(TheDeepChecker's 0.85 saturation-ratio bar). A layer's saturated fraction is the larger of the
share of its unit-observations beyond +-5 and the share of its saturated units; it fails above 20%
and warns above 5% (measured on the zoo: healthy files at most 0.0002, bugs at least 0.46). A
softmax row is saturated when its largest probability exceeds sigmoid(5) = 0.9933 (two classes five
logits apart, the same bar). The model's output under a loss that takes its log (sigmoid ->
BCELoss, softmax -> NLLLoss) is judged at +-17, where float32 rounds it to 0 or 1; the softmax of
fused attention kernels cannot be seen and is named as such. Details and
measurements: docs/probes/saturation.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nndiag.activation_trace import DEFAULT_LEVELS, trace_or_skip
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold


@dataclass(frozen=True)
class SaturationConfig:
    """Settings of the saturation probe."""

    samples: int = threshold(256, "same pass as dead-neurons (256 samples)",
                             "samples pulled from the data for the activation pass")
    input_limit: float = threshold(
        5.0, "DeepDiagnosis (inputs beyond +-5); SageMaker Debugger uses 9.5 for tanh, -23/17 for sigmoid",
        "an observation is saturated when |input| of sigmoid/tanh exceeds this")
    unit_fraction: float = threshold(
        0.85, "TheDeepChecker (saturation ratio > 0.85)",
        "a unit is saturated when more than this fraction of its observations are")
    warn_fraction: float = threshold(
        0.05, "measured on the zoo: docs/probes/saturation.md (healthy files at most 0.0002, the "
        "saturation bugs at least 0.46)", "warn when a layer's saturated fraction is above this")
    fail_fraction: float = threshold(
        0.2, "measured on the zoo: docs/probes/saturation.md (healthy at most 0.0002, bugs at least "
        "0.46; 0.2 is torchdiag's warn level); DeepDiagnosis and TheDeepChecker flag > 50%",
        "fail when a layer's saturated fraction is above this")
    log_cancelled_limit: float = threshold(
        17.0, "SageMaker Debugger's sigmoid bar (17); float32 rounds sigmoid(x) to exactly 1 from "
        "x = 16.6; measured on the zoo: docs/probes/saturation.md",
        "an output sigmoid/softmax whose loss takes its log (BCELoss, NLLLoss) is judged at this "
        "input level instead of input_limit")


class SaturationProbe(Probe):
    """Per sigmoid/tanh/softmax site, the fraction of units (rows for softmax) stuck at a limit."""

    id = "saturation"
    cost = 70  # the order of a check: cheapest first
    hint = ('saturated sigmoid/tanh units come from large pre-activations: scale the init or the '
            'inputs, or add normalisation before the activation')
    description = "Sigmoid, tanh and softmax units stuck at their limits, per layer."
    Config = SaturationConfig

    def charts(self, result):
        """The saturated fraction per sigmoid/tanh/softmax site, with the limits: nndiag.charts data."""
        from nndiag import chartkit

        return chartkit.charts_or_note(chartkit.fraction_chart(result, self.config, ("saturated_fraction", "fraction"),
                                                              title="Saturated units per layer", what="saturated"), result)

    def requires(self):
        """The shared activation pass, counting at the default levels and this probe's limits."""
        from nndiag.passes import ActivationPass

        cfg = self.config
        wanted = {float(cfg.input_limit), float(cfg.log_cancelled_limit)} - set(DEFAULT_LEVELS)
        return [ActivationPass(int(cfg.samples), DEFAULT_LEVELS + tuple(sorted(wanted)))]

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        level = float(cfg.input_limit)
        wanted = {level, float(cfg.log_cancelled_limit)} - set(DEFAULT_LEVELS)
        levels = DEFAULT_LEVELS + tuple(sorted(wanted))  # the defaults share one pass
        trace = trace_or_skip(ctx, out, cfg.samples, levels)
        sites = trace.by_family("bounded") + trace.by_family("softmax")
        attention = _fused_attention_note(trace)
        if not sites:
            fused = (f" The gates of {', '.join(trace.fused_recurrent)} (LSTM/GRU) run in one fused "
                     "kernel and cannot be watched." if trace.fused_recurrent else "")
            if attention:
                out.skip("no sigmoid, tanh or softmax can be watched: " + attention[0].lower()
                         + attention[1:] + fused)
            out.skip("no sigmoid, tanh or softmax runs in the forward pass (as a module or a function "
                     "call), so nothing can saturate." + fused)
        if attention:
            out.finding("pass", attention, where=trace.fused_attention[0].split(" (")[0],
                        metric="fused_attention_calls")
        sites.sort(key=lambda s: trace.sites.index(s))
        rows = []
        trained = ctx.subject.trained
        cancelled = self._log_cancelled_outputs(ctx, trace, sites)
        for site in sites:
            if id(site) in cancelled and not trained:
                # BCELoss/NLLLoss take the log of this output: d(loss)/d(input) = p - y, which does
                # not vanish when p is pinned near 0/1, until float32 rounds p to exactly 0 or 1.
                judged = self._bounded(Outcome(), site, level) if site.family != "softmax" \
                    else self._softmax(Outcome(), site, level)
                hard = float(cfg.log_cancelled_limit)
                row = self._bounded(out, site, hard) if site.family != "softmax" \
                    else self._softmax(out, site, hard)
                row["saturated_fraction_at_input_limit"] = judged["saturated_fraction"]
                row["judged_at"] = hard
                rows.append(row)
                if judged["saturated_fraction"] > cfg.warn_fraction:
                    out.finding("pass", f"{site.label}: {judged['saturated_fraction']:.0%} beyond "
                                f"+-{level:g}, but this is the model's output and the loss takes its "
                                f"log ({cancelled[id(site)]}), which cancels the flat slope: the gradient "
                                f"stays p - y. Only inputs beyond +-{hard:g}, where float32 rounds the "
                                f"output to exactly 0 or 1, are judged: "
                                f"{row['saturated_fraction']:.0%}.", where=site.where,
                                value=judged["saturated_fraction"], metric="output_saturated_fraction")
                continue
            if trained and _is_output_site(trace, site, sites):
                # A trained classifier's output sigmoid/softmax is meant to be confident: pinned
                # near 0/1 is the goal of training, not a stuck unit. At initialisation it is not.
                rows.append(self._bounded(Outcome(), site, level) if site.family != "softmax"
                            else self._softmax(Outcome(), site, level))
                out.finding("pass", f"{site.label}: the model's output activation; with trained "
                            "weights, confident (saturated) outputs are expected and not judged.",
                            where=site.where, value=rows[-1]["saturated_fraction"],
                            metric="saturated_fraction")
                continue
            if site.family == "softmax":
                row = self._softmax(out, site, level)
            else:
                row = self._bounded(out, site, level)
            rows.append(row)
        out.data["layers"] = rows
        worst = max(rows, key=lambda r: r["saturated_fraction"])
        out.metric("layers", len(rows))
        out.metric("worst_saturated_fraction", worst["saturated_fraction"])
        out.metric("samples", trace.samples)
        out.summary = (f"{len(rows)} sigmoid/tanh/softmax site(s) over {trace.samples} samples; most "
                       f"saturated {worst['layer']} {worst['saturated_fraction']:.0%}")

    def _log_cancelled_outputs(self, ctx: ProbeContext, trace, sites) -> dict:
        """Output sites whose loss takes their log (sigmoid -> BCELoss, softmax -> NLLLoss),
        mapped to the loss's name."""
        outputs = [s for s in sites if s.op in _LOG_LOSSES and _is_output_site(trace, s, sites)]
        if not outputs:
            return {}
        try:
            ops = _loss_ops(ctx)
        except SubjectError:
            return {}
        found = {}
        for site in outputs:
            op, name = _LOG_LOSSES[site.op]
            if ops and all(o == op for o in ops):
                found[id(site)] = name
        return found

    def _bounded(self, out: Outcome, site, level: float) -> dict:
        cfg = self.config
        beyond = (site.above[level] + site.below[level]).float() / max(site.observations, 1)
        observed = float(beyond.mean())  # DeepDiagnosis: share of unit-observations beyond +-level
        stuck = int((beyond > cfg.unit_fraction).sum())  # TheDeepChecker: units mostly saturated
        unit_frac = stuck / site.units if site.units else 0.0
        frac = max(observed, unit_frac)
        row = {"layer": site.label, "where": site.where, "op": site.op, "units": site.units,
               "saturated_fraction": frac, "observations_beyond": observed,
               "units_saturated": stuck, "units_saturated_fraction": unit_frac,
               "observations": site.observations}
        if frac > cfg.warn_fraction:
            bound = "0 or 1" if site.op == "sigmoid" else "-1 or +1"
            msg = (f"{site.label}: {observed:.0%} of the {site.op} inputs ({site.units} units x "
                   f"{site.observations:,} observations) are beyond +-{level:g}, and {stuck} of "
                   f"{site.units} units are beyond it in more than {cfg.unit_fraction:.0%} of their "
                   f"observations: the outputs are pinned at {bound}, where the gradient is at most "
                   f"{_slope(site.op, level):.1e} of its peak. Likely causes: unscaled inputs "
                   "(standardise them), weights initialised too large (e.g. nn.init.normal_ with its "
                   "default std=1), or a deep sigmoid/tanh stack. Fixes: normalise the inputs, use the "
                   "default or Xavier init, or ReLU-family hidden activations with BatchNorm/LayerNorm.")
            out.graded(msg, where=site.where, value=frac, warn_limit=cfg.warn_fraction,
                       fail_limit=cfg.fail_fraction, metric="saturated_fraction")
        return row

    def _softmax(self, out: Outcome, site, level: float) -> dict:
        cfg = self.config
        peaked = site.rows_peaked.get(level, 0)
        frac = peaked / site.rows if site.rows else 0.0
        bar = 1.0 / (1.0 + math.exp(-level))
        row = {"layer": site.label, "where": site.where, "op": site.op, "units": site.units,
               "saturated": peaked, "saturated_fraction": frac, "rows": site.rows,
               "observations": site.observations}
        if site.units == 1:
            out.fail(f"{site.label}: {site.op} over a dimension of size 1 always returns "
                     f"{'1.0' if site.op == 'softmax' else '0.0'}, whatever its input: the output is "
                     "constant and passes no gradient. For one output unit use sigmoid (or no "
                     "activation with BCEWithLogitsLoss); otherwise check the dim argument.",
                     where=site.where, value=1.0, limit=cfg.fail_fraction, metric="saturated_fraction")
            return row
        if frac > cfg.warn_fraction and peaked:
            msg = (f"{site.label}: in {peaked} of {site.rows:,} {site.op} rows ({frac:.0%}) one entry "
                   f"takes more than {bar:.4f} of the probability before any training, so the "
                   "gradient through it is nearly zero. Likely causes: logits on a large scale "
                   "(unscaled inputs, large init, a missing temperature or 1/sqrt(d) scaling). Fix the "
                   "scale of the logits.")
            out.graded(msg, where=site.where, value=frac, warn_limit=cfg.warn_fraction,
                       fail_limit=cfg.fail_fraction, metric="saturated_fraction")
        return row


def _fused_attention_note(trace) -> str:
    """A sentence naming the fused attention calls whose softmax cannot be seen ('' when none)."""
    calls = trace.fused_attention
    if not calls:
        return ""
    shown = ", ".join(calls[:3]) + (f" and {len(calls) - 3} more" if len(calls) > 3 else "")
    return (f"The attention softmax of {shown} runs inside one fused kernel, which no hook can look "
            "into, so its saturation is not checked here (only a hand-written attention softmax is).")


def _slope(op: str, level: float) -> float:
    """Derivative at |input| = level relative to the derivative at 0."""
    s = 1.0 / (1.0 + math.exp(-level))
    if op == "sigmoid":
        return s * (1 - s) / 0.25
    return 1.0 - math.tanh(level) ** 2


def _is_output_site(trace, site, sites) -> bool:
    """True when ``site`` produced the model's output (possibly followed by reshapes)."""
    o = trace.output_op
    if o is None:
        return False
    if (o.op, o.module_path, o.producer) == (site.op, site.module_path, site.producer):
        return True
    # Shape-only ops (squeeze, view) after the activation: the last bounded/softmax site, named
    # in the output's op chain.
    return site is sites[-1] and any(site.op in name for name in trace.output_chain[:4])


_LOG_LOSSES = {"sigmoid": ("binary_cross_entropy", "BCELoss"), "softmax": ("nll_loss", "NLLLoss"),
               "log_softmax": ("nll_loss", "NLLLoss")}


def _loss_ops(ctx: ProbeContext) -> list[str]:
    """The loss functions the subject's loss computation calls on its first batch (shared)."""
    from nndiag.loss_calls import record_loss_calls

    def compute():
        return [c.op for c in record_loss_calls(ctx.bench, ctx.bench.first_batch())]
    return ctx.shared(("loss-ops", "first batch"), compute)


@hookimpl
def nndiag_register_probes():
    """Register the saturation probe."""
    return [SaturationProbe]
