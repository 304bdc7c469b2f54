"""``nan``: does any NaN/Inf appear in the training nndiag runs, and where first.

It watches its own few steps on the probe batches (the shared pass), and judges every other
training run of the same check too: a loss that turns non-finite at step 42 of the overfit run is
a ``nan`` finding with its producer located by a replay of that run ("one training pass
sees everything"). So that those runs have happened, nan runs after overfit.

Answers in the order the values flow: already in the inputs or targets, already in a parameter,
produced in the forward pass (the first module whose inputs were finite and whose output is not,
down to the functional call inside its ``forward``), produced by the loss, or first in a gradient;
and at which step. The cost on a healthy model is one fused gradient-norm check per step (see
nndiag/training_trace.py); the expensive instrumented replay runs only once something went wrong.
"""

from __future__ import annotations

from dataclasses import dataclass

from nndiag.hookspecs import hookimpl
from nndiag.nan_locator import locate
from nndiag.passes import TRAINING_SAMPLES
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.probes.nan_watch import long_watch, loss_scale, loss_spike, step_flops, watch_steps
from nndiag.training_trace import NonFinite, shared_training_trace

# Gradient statistics kept by the shared pass; the gradients probe reads these steps.
GRADIENT_STATS_STEPS = 5


@dataclass(frozen=True)
class NanConfig:
    """Settings of the nan probe."""

    steps: int = threshold(
        20, "own choice (enough updates for a NaN that needs a few steps to appear, e.g. from a "
        "too-high learning rate); torch's detect_anomaly checks one step only",
        "training steps to run while watching for NaN/Inf")
    watch_steps: int = threshold(
        300, "measured on the zoo (docs/probes/nan.md): a hand-written log(1 - sigmoid) first "
        "turns -inf after 23-135 steps on seeds 0-2 (up to 383 on other draws); no healthy zoo "
        "file turns non-finite within 300 steps", "steps of the long watch (the shared pass "
        "continued), for models within watch_flops")
    watch_flops: float = threshold(
        5e9, "nndiag choice (docs/probes/nan.md): the reference MNIST MLP counts 2.9e7 FLOPs a "
        "step and gets 171 steps (a few seconds at most on a loaded core); the zoo's tiny "
        "classifiers get all 300", "most counted FLOPs the long "
        "watch may spend; a costlier model gets fewer steps, decided by its FLOPs, never a clock")
    max_loss_spike: float = threshold(
        10.0, "measured on the zoo (docs/probes/nan.md): in nan's watched runs the healthy files "
        "rise at most 0.56x their loss scale above the best loss reached on the same batch (147 "
        "runs, seeds 0-2); an SGD step past the stability limit 1.2e6x", "warn when the watched "
        "loss rises more than this many "
        "times its initial value above its best so far, and stays finite")


# What usually makes each op produce NaN/Inf from finite inputs, and the fix.
_OP_HINTS = {
    "log": "log of 0 or of a negative number (e.g. log(softmax(x)) when a probability underflows "
           "to 0): use log_softmax, or clamp the argument with a small epsilon",
    "log2": "log of 0 or of a negative number: clamp the argument with a small epsilon",
    "log10": "log of 0 or of a negative number: clamp the argument with a small epsilon",
    "div": "division by zero: add a small epsilon to the denominator",
    "true_divide": "division by zero: add a small epsilon to the denominator",
    "sqrt": "sqrt of a negative number: clamp the argument at 0 (and add an epsilon)",
    "rsqrt": "rsqrt of 0 or a negative number: add an epsilon",
    "exp": "exp overflow: the argument is too large; subtract the max first (logsumexp) or lower "
           "the learning rate",
    "pow": "pow of 0 to a negative power or of a negative base: check the argument",
    "reciprocal": "reciprocal of 0: add an epsilon",
}
_GENERIC_HINT = ("values grew too large to represent: usually a learning rate that is too high, "
                 "unnormalised inputs, or a missing normalisation layer")


class NanProbe(Probe):
    """Watches a few training steps for NaN/Inf and names where the first one is produced."""

    id = "nan"
    cost = 95  # the order of a check: cheapest first
    hint = ('NaN/Inf usually come from log/sqrt/division of 0 or negatives, a too-large learning rate '
            'or unnormalised inputs; the first module listed is where it first appears')
    description = "Finds the first NaN/Inf in the training nndiag runs: inputs, parameters, module, loss or gradient."
    Config = NanConfig

    def requires(self):
        """The shared training pass: this many steps, the first few with gradient statistics."""
        from nndiag.passes import TrainingPass

        return [TrainingPass(int(self.config.steps), GRADIENT_STATS_STEPS)]

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        steps = int(self.config.steps)
        trace = shared_training_trace(ctx, steps, GRADIENT_STATS_STEPS)
        out.metric("steps_run", trace.steps_run)
        out.data["loss_curve"] = list(trace.losses)
        event = trace.non_finite
        if event is None:
            # The nan probe runs after the other training probes (plugins' cost order), so every
            # training loop nndiag ran on this subject has been watched by now.
            observed = ctx.observed_non_finite()
            if observed:
                run = observed[0]
                out.metric("first_nonfinite_step", run.step)
                out.metric("nonfinite_source", run.source)
                self._report_producer(ctx, out, NonFinite(run.step, run.stage, "", run.detail),
                                      batches=list(run.batches), source=run.source)
                return
            trace, event = self._long_watch(ctx, out, trace)
        if event is None:
            out.metric("first_nonfinite_step", None)
            out.summary = f"no NaN/Inf in {trace.steps_run} training steps"
            self._spike(ctx, out, trace.losses)
            return
        out.metric("first_nonfinite_step", event.step)
        if event.stage in ("inputs", "targets"):
            out.fail(f"The batch {event.stage} already hold NaN/Inf before the model runs "
                     f"(step {event.step}: {event.detail}). Clean the data (check for missing values "
                     "and divisions by a zero std in the preprocessing).", where=event.stage,
                     metric="first_nonfinite_step", value=event.step)
            out.summary = f"NaN/Inf already in the {event.stage} at step {event.step}"
            return
        if event.stage == "parameters":
            cause = ("a custom initialisation" if event.step == 0 else
                     "an update that went non-finite (your train_step should not step on NaN gradients)")
            out.fail(f"{event.detail}: look at {cause}.", where=event.where,
                     metric="first_nonfinite_step", value=event.step)
            out.summary = f"parameter {event.where} is NaN/Inf at step {event.step}"
            return
        if trace.steps_run > steps:  # found by the long watch: a run of its own, replayed as such
            self._report_producer(ctx, out, event, batches=ctx.bench.probe_batches(TRAINING_SAMPLES),
                                  source=f"the nan probe's {out.metrics['watch_steps']}-step watch")
            return
        self._report_producer(ctx, out, event)

    def _spike(self, ctx: ProbeContext, out: Outcome, losses: list[float]) -> None:
        """Loss spikes in the watched run: the largest rise above the best loss reached on the
        same batch, as a multiple of the initial loss (docs/probes/nan.md)."""
        scale = loss_scale(ctx.bench)
        spike = loss_spike(list(losses), len(ctx.bench.probe_batches(TRAINING_SAMPLES)), scale)
        if spike is None:
            return
        rise, step = spike
        out.metric("loss_spike", rise)
        out.metric("loss_spike_step", step)
        out.metric("loss_scale", max(losses[0], scale or 0.0))
        limit = float(self.config.max_loss_spike)
        if scale is None and ctx.bench.subject.weights is not None:
            return  # trained weights and no constant baseline: no scale to judge a rise in
        if rise > limit:
            out.warn(f"The loss spiked at step {step} of the {len(losses)} watched steps: it rose "
                     f"{rise:.3g}x its scale ({max(losses[0], scale or 0.0):.3g}: the larger of its "
                     f"initial value and the loss of a constant prediction) above the best it reached "
                     f"on the same batch, though it stayed finite. A learning rate at the edge of "
                     "divergence does this (see lr-range); lower it or clip gradients.",
                     where="loss", value=rise, limit=limit, metric="loss_spike")

    def _long_watch(self, ctx: ProbeContext, out: Outcome, trace):
        """The shared pass continued to ``watch_steps`` for models within ``watch_flops``: the
        longer trace (the given one when no longer watch runs) and its non-finite event."""
        cfg = self.config
        flops = step_flops(ctx.bench)
        planned = watch_steps(flops, int(cfg.watch_steps), float(cfg.watch_flops))
        out.metric("step_flops", flops)
        out.metric("watch_steps", planned)
        if planned <= trace.steps_run:
            return trace, None
        longer = long_watch(ctx.bench, planned)
        out.data["loss_curve"] = list(longer.losses)
        out.metric("steps_run", longer.steps_run)
        return longer, longer.non_finite

    def _report_producer(self, ctx: ProbeContext, out: Outcome, event, batches=None,
                         source: str = "") -> None:
        producer = locate(ctx.bench, event, batches)
        step = event.step
        # Where the step counts from: the shared training pass, or another probe's run.
        at = f"step {step} of {source}" if source else f"step {step}"
        if producer is None:
            out.fail(f"The {event.stage} became NaN/Inf at {at} ({event.detail}), but a replay "
                     "of that step did not reproduce it, so its producer could not be located "
                     "(non-deterministic code?). Run with torch.autograd.detect_anomaly() to dig in.",
                     where=event.stage, metric="first_nonfinite_step", value=step)
            out.summary = f"{event.stage} NaN/Inf at {at} (producer not located)"
            return
        if producer.stage == "parameters":
            cause = (f"{producer.hint}." if producer.hint else "an update with a finite but huge "
                     "gradient overflowed it. Lower the learning rate or clip gradients.")
            out.fail(f"{producer.detail}: {cause}", where=producer.where,
                     metric="first_nonfinite_step", value=step)
            out.summary = f"parameter {producer.where} became NaN/Inf before {at}"
            return
        op = producer.op.split(".")[-1]
        hint = producer.hint or _OP_HINTS.get(op.rstrip("_"), _GENERIC_HINT)  # fp16 overflow: its own
        if producer.stage == "gradients":
            out.fail(f"At {at} the forward pass and loss were finite, but the gradient of "
                     f"{producer.where} is NaN/Inf: {producer.detail}. Typical causes: sqrt or norm "
                     "of exactly 0, or exploding gradients; clip gradients or lower the learning rate.",
                     where=producer.where, metric="first_nonfinite_step", value=step)
            out.summary = f"first NaN/Inf in the gradient of {producer.where} at {at}"
            return
        place = ("the loss function" if producer.stage == "loss" else producer.where)
        out.fail(f"First NaN/Inf produced at {at} in {place}: {producer.detail}. "
                 f"Likely cause: {hint}.", where=producer.where if producer.stage != "loss" else "loss",
                 metric="first_nonfinite_step", value=step)
        out.metric("producer_op", producer.op)
        out.summary = f"first NaN/Inf at {at} in {place} ({producer.op or 'module output'})"


@hookimpl
def nndiag_register_probes():
    """Register the nan probe."""
    return [NanProbe]
