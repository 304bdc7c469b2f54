"""The overfit probe's report: the curves and metrics of the fitting run, and the text of its
pass, fail or skip."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from nndiag.probe import Outcome
from nndiag.probes.overfit.dropout import DropoutCheck, describe
from nndiag.probes.overfit.fitting import FitRun
from nndiag.probes.overfit.verdict import decide, measures

if TYPE_CHECKING:
    from nndiag.probes.overfit import OverfitConfig


def report(out: Outcome, run: FitRun, cfg: OverfitConfig, dropout: DropoutCheck | None = None) -> None:
    """Record the run in ``out``: its curves and metrics, and the pass, fail or skip with its text
    (``dropout``: the dropout-off fit of a run that learned but did not fit, when one ran)."""
    curve, n = run.curve, run.n
    initial, final = curve[0], curve[-1]
    finite = [c for c in curve if math.isfinite(c)]
    steps = len(curve)
    out.data["loss_curve"] = curve
    if run.accs:
        out.data["accuracy_curve"] = run.accs
    out.metric("initial_loss", initial)
    out.metric("final_loss", final)
    out.metric("best_loss", min(finite) if finite else math.nan)
    out.metric("target", run.target)
    out.metric("loss_floor", run.floor)
    out.metric("steps", steps)
    out.metric("seconds", run.seconds)
    out.metric("max_steps", run.max_steps)  # the budget; "steps" is what ran
    out.metric("max_seconds", float(cfg.max_seconds))
    out.metric("samples", n)
    out.metric("cut_by_time", run.cut_by_time)
    if run.scorer is not None:
        out.metric("accuracy", run.accs[-1] if run.accs else None)
        out.metric("chance_accuracy", run.scorer.chance)
    budget = f"{steps} of {run.max_steps} steps, {run.seconds:.1f} s, on {n} samples"
    floor_note = f" (loss floor {run.floor:.3g}: {run.floor_why})" if run.floor else ""
    what = f"loss {initial:.3g} -> {final:.3g}{floor_note}"

    if run.scorer is not None and run.scorer.chance >= 1.0:
        out.finding("pass", f"Every target in the {n}-sample batch is the same class, so accuracy "
                    "cannot tell fitting from a constant output; the loss alone is judged (the "
                    "data probe judges the targets).", where="targets", value=run.scorer.chance,
                    metric="chance_accuracy")
    if not math.isfinite(final):
        out.fail(f"The loss became {final} at step {steps} while fitting one batch of {n} samples "
                 f"(it started at {initial:.3g}). The model cannot learn like this: the learning rate "
                 "is likely far too high (see the lr-range probe), or an operation overflows (see "
                 "the nan probe).", value=final, limit=run.target, metric="final_loss")
        out.summary = f"loss became {final} at step {steps} ({budget})"
        return
    if run.fitted_by:
        out.metric("fitted_by", run.fitted_by)
        how = {"accuracy": "every sample classified right",
               "accuracy in eval mode": "every sample classified right in eval mode (dropout off)",
               "loss": f"below the target {run.target:.3g}",
               "plateau": "the loss fell and then plateaued (its floor is unknown: taken as reached)",
               }[run.fitted_by]
        out.summary = f"fitted one batch: {what}, {how}; {budget}"
        return
    m = measures(run, cfg)
    for key, value in m.items():
        out.metric(key, value)
    verdict = decide(run, m, cfg)
    if dropout is not None:
        for key, value in describe(dropout).items():
            out.metric(key, value)
        worst = dropout.worst()
        if verdict == "skip" and worst is not None and worst[3] < cfg.min_dropout_retention:
            _dropout_fail(out, run, dropout, cfg)
            out.summary = f"not fitted in train mode: {worst[0]} (Dropout p={worst[1]:g}) drops too much; {budget}"
            return
    write_verdict(out, run, m, verdict, what, budget, cfg)


def _dropout_fail(out: Outcome, run: FitRun, check: DropoutCheck, cfg: OverfitConfig) -> None:
    name, p, acc, kept = check.worst()
    keep = (f" nn.Dropout's p is the probability to drop a unit; TensorFlow's keep_prob is the "
            f"probability to keep one: if {p:g} was meant as a keep probability, use "
            f"nn.Dropout({1 - p:.2g}).") if p >= 0.5 else ""
    out.fail(f"Dropout stops the model from fitting one fixed batch of {run.n} samples: with dropout "
             f"on it did not fit within {run.max_steps} steps; from the same initialisation with "
             f"every dropout layer off it fits in {check.off_steps} steps, and then {name} "
             f"(Dropout p={p:g}) switched on alone leaves {acc:.0%} of the batch classified right "
             f"(chance {run.scorer.chance:.0%}): it keeps {kept:.0%} of what the network learned, "
             f"where healthy dropout layers keep over {cfg.min_dropout_retention:.0%}.{keep}",
             where=name, value=kept, limit=cfg.min_dropout_retention, metric="dropout_retention")

def write_verdict(out: Outcome, run: FitRun, m: dict, verdict: str, what: str, budget: str,
                  cfg: OverfitConfig) -> None:
    """Write the outcome of a run that did not fit the batch: the fail, pass or skip ``verdict``
    names, in words that say what was measured and what to try."""
    n = run.n
    initial, end = run.curve[0], m["end_loss"]
    peak = max(c for c in run.curve if math.isfinite(c))
    spike = ""
    if peak > 10 * abs(initial) and peak > 0:
        spike = (f"The loss spiked to {peak:.3g} at step {run.curve.index(peak) + 1} on the way: the "
                 "learning rate is likely too high for this model (see lr-range). ")
    causes = ("Likely causes: a learning rate far too small or far too large for the optimizer (see "
              "lr-range), strong weight decay, inputs not scaled (raw pixels 0-255), saturated "
              "sigmoid/tanh units or a sigmoid or softmax where the loss expects logits, dead ReLUs, "
              "a detached tensor or frozen layers cutting the loss off the parameters, a missing "
              "optimizer.step(), or a loss that does not fit the task.")
    acc, gain, chance = m.get("accuracy"), m.get("accuracy_gain"), (
        run.scorer.chance if run.scorer is not None else None)
    drop = m["drop"]
    if verdict == "fail-drop":
        out.fail(f"The model does not learn one fixed batch of {n} samples: the loss went "
                 f"{initial:.4g} -> {end:.4g} (median of the last steps), {drop:.1%} of the way to "
                 f"{run.floor:.3g} (needed at least {cfg.min_drop:.0%})"
                 + (f", and its batch accuracy is {acc:.0%} (chance {chance:.0%})" if acc is not None else "")
                 + f", in {budget}. {spike}{causes}", value=drop, limit=cfg.min_drop, metric="drop")
    elif verdict == "fail-accuracy":
        out.fail(f"The model does not learn one fixed batch of {n} samples: after {budget} its "
                 f"batch accuracy is {acc:.0%}, {'no' if acc <= chance else 'hardly'} better than "
                 f"always predicting the most common class ({chance:.0%}; it closed {gain:.1%} of "
                 f"the gap to 100%, needed {cfg.min_accuracy_gain:.0%}), while the loss went "
                 f"{initial:.3g} -> {end:.3g}"
                 + (", below the lowest value a correctly fed loss can take" if m["below_floor"] else "")
                 + f". {spike}{causes}", value=gain, limit=cfg.min_accuracy_gain, metric="accuracy_gain")
    elif verdict == "fail-stalled":
        out.fail(f"The classifier stalled on one fixed batch of {n} samples: over the last "
                 f"{int(cfg.plateau_window)} of {budget} its loss closed only "
                 f"{m['late_progress']:.1%} of its gap (at {end:.3g}, from {initial:.3g}) and its "
                 f"batch accuracy stays at {acc:.0%} (chance {chance:.0%}; it closed {gain:.0%} of "
                 f"that gap, a fitting model closes over {cfg.stall_accuracy_gain:.0%}). It cannot "
                 f"fit even this batch. {spike}{causes}", value=gain, limit=cfg.stall_accuracy_gain,
                 metric="accuracy_gain")
    elif verdict == "fail-baseline":
        base = run.baseline
        out.fail(f"The model does not learn one fixed batch of {n} samples: its loss ended at {end:.4g}, "
                 f"hardly below {base[0]:.4g}, the loss of {base[1]} (it closed "
                 f"{m['baseline_gain']:.1%} of that gap, needed {cfg.min_drop:.0%}), so it learned "
                 f"nothing about the inputs in {budget}. A network that collapses to a constant "
                 f"output often has every ReLU dead after a too-large update. {spike}{causes}",
                 value=m["baseline_gain"], limit=cfg.min_drop, metric="baseline_gain")
    elif verdict == "fail-still":
        out.fail(f"The loss did not move while training one fixed batch of {n} samples: over "
                 f"{budget} it stayed within {m['moved']:.2%} of {initial:.4g} (needed a change "
                 f"of at least {cfg.still_limit:.1%}), so no step changes what the loss sees. "
                 f"{causes}", value=m["moved"], limit=cfg.still_limit, metric="moved")
    elif verdict == "pass-plateau":
        out.summary = (f"converged on one batch: {what}, a fall of {drop:.0%} that then plateaued "
                       f"(the loss's floor is unknown); {budget}")
        return
    else:
        acc_note = f", batch accuracy {acc:.0%} (chance {chance:.0%})" if acc is not None else ""
        drop_note = f" ({drop:.0%} of the way to its floor)" if drop is not None else ""
        if run.cut_by_time:
            why = (f"the time budget ({cfg.max_seconds:g} s) ended the run after {len(run.curve)} of "
                   f"{run.max_steps} steps, before the step budget could decide; a verdict must not "
                   "depend on the machine's speed or load (raise overfit.max_seconds to decide)")
        else:
            why = (f"it learns ({what}{drop_note}{acc_note}) but did not fit the batch within "
                   f"{run.max_steps} steps; slow is not broken (a small learning rate, dropout, a loss "
                   "with a floor above zero); raise overfit.steps to decide")
        out.metric("undecided", True)
        out.skip(why)
    out.summary = f"not fitted: {what}; {budget}"
