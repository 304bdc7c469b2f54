"""``overfit``: can the model fit one fixed batch, with its own optimizer, within a step budget?

A fresh model is trained with the subject's optimizer (the user's ``train_step`` or
``training_step`` when given) on the whole first batch, again and again, until the batch is fitted
or the step budget runs out (early exit when fitted). The batch is never cut: inputs such as an
``EmbeddingBag``'s flat tokens with offsets cannot be sliced without understanding them.

Fitted means:

* classification (output ``(N, C, ...)`` with integer targets, one-hot or 0/1 targets): every
  sample of the batch is classified right (in train mode, or in eval mode when dropout hides it)
  and the loss fell at least ``fit_drop`` of the way to its floor (or below the target);
* otherwise, for a loss whose floor nndiag knows (the torch losses under nndiag's own step: 0,
  or the entropy of smoothed/soft targets): below ``floor + target_fraction * (scale - floor)``;
* for any other loss (a ``training_step``/``train_step``, a custom loss): its floor is unknown, so
  a loss that fell at least ``converged_drop`` and then stopped falling counts as converged.

Outcomes: ``pass`` (fitted or converged), ``fail`` only where the model does not learn, with high
confidence (the loss became NaN/Inf; the loss did not fall and the accuracy stayed at chance over
the whole step budget; a classifier stalled near chance; the loss stayed at the level of the best
constant prediction), ``skip`` otherwise: learning but not fitted within the budget, the time
budget cut the run (machine load never turns into a verdict), a batch of fewer than
``min_samples`` samples, or ``skip_reason``. Thresholds and measurements: docs/probes/overfit.md.

The package by job: :mod:`.criteria` (classification scoring, loss floors, constant baselines),
:mod:`.fitting` (the shared fitting run at the held learning rate), :mod:`.verdict` (the numbers a
run that did not fit is judged on, and the decision), :mod:`.report` (metrics and the verdict's text).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.probes.overfit.criteria import (Classification, constant_baseline, detect_classification,
                                            detect_floor, floor_is_known)
from nndiag.probes.overfit.dropout import check_dropout
from nndiag.probes.overfit.fitting import (CONFIRM_SEED_OFFSET, FitRun, SharedFit, confirm_fit_run,
                                           shared_fit_run)
from nndiag.probes.overfit.report import report
from nndiag.probes.overfit.verdict import decide, fixed_lr_blowup, measures

__all__ = ["Classification", "FitRun", "OverfitConfig", "OverfitProbe", "SharedFit", "constant_baseline",
           "decide", "detect_classification", "detect_floor", "fixed_lr_blowup", "floor_is_known",
           "measures", "nndiag_register_probes", "shared_fit_run"]


@dataclass(frozen=True)
class OverfitConfig:
    """Settings of the overfit probe."""

    samples: int = threshold(0, "nndiag choice: cutting a batch the probe does not understand (an "
                             "EmbeddingBag's flat tokens with offsets) breaks it, so the whole first "
                             "batch is fitted", "0: the whole first batch; N: its first N samples, "
                             "only when every tensor of the batch has the same first dimension")
    min_samples: int = threshold(4, "nndiag choice: a batch of 2 (BatchNorm at batch size 2) fits "
                                 "or fails to fit for reasons of its own; XOR's 4 points are the "
                                 "smallest meaningful batch", "skip below this many samples")
    steps: int = threshold(300, "the checklist of the PyTorch tutorials the reference models come "
                               "from runs 100 steps; measured on the zoo: healthy classifiers fit in "
                               "1-250 steps (docs/probes/overfit.md)",
                           "step budget; not fitted within it is 'not decided' (skip), never warn")
    max_seconds: float = threshold(60.0, "a safety net for huge models, not a limit the verdict "
                                   "depends on: a run it cuts is a skip (docs/probes/overfit.md)",
                                   "time budget (wall clock); when it cuts the run the probe skips")
    target_fraction: float = threshold(0.02, "the reference models' tutorial checklist: loss < 0.1 "
                                       "after 100 steps, i.e. ~4% of ln 10", "a loss with a known floor "
                                       "is fitted below floor + fraction x (scale - floor)")
    fit_drop: float = threshold(0.5, "measured on the zoo: healthy classifiers that classify the "
                                "whole batch right have closed 60-100% of the loss gap "
                                "(docs/probes/overfit.md)", "a classifier is fitted when every "
                                "sample is right and the loss closed this share of its gap")
    converged_drop: float = threshold(0.5, "measured on the zoo: losses with an unknown floor (VAE, "
                                      "own training_step) that plateau have fallen 60-99% "
                                      "(docs/probes/overfit.md)", "a loss with an unknown floor "
                                      "counts as converged when it fell this much and plateaued")
    plateau_window: int = threshold(100, "nndiag choice: the last third of the step budget",
                                    "steps over which 'still falling' is measured")
    plateau_progress: float = threshold(0.01, "measured on the zoo (docs/probes/overfit.md)",
                                        "plateaued when the last plateau_window steps closed less "
                                        "than this share of the initial loss gap")
    min_drop: float = threshold(0.1, "measured: non-learning bugs close 0-6% of the loss gap, "
                                "healthy models far more (docs/probes/overfit.md)",
                                "below this fall of the loss (fraction of initial - floor), with "
                                "no accuracy gain either, the model does not learn: fail")
    min_accuracy_gain: float = threshold(0.1, "measured: non-learning classifiers close 0-5% of "
                                         "the gap from chance to 100% (docs/probes/overfit.md)",
                                         "below this share of the gap from chance accuracy to "
                                         "100% the classifier has not learned")
    stall_accuracy_gain: float = threshold(0.3, "measured on the zoo: healthy classifiers close "
                                           "> 90% of the accuracy gap (docs/probes/overfit.md)",
                                           "a classifier whose loss plateaued with less than this "
                                           "accuracy gain has stalled: fail")
    still_limit: float = threshold(1e-3, "nndiag choice: a loss that moved less than 0.1% of itself "
                                   "in 300 steps is not being trained (no optimizer.step)",
                                   "a loss with an unknown floor that moved less than this "
                                   "(relative) over the budget: fail")
    eval_every: int = threshold(10, "nndiag choice: one extra forward every 10 steps",
                                "how often a not-yet-fitted classifier is also scored in eval mode "
                                "(dropout off)")
    loss_floor: float | None = threshold(None, "detected (label smoothing, soft BCE targets) or 0",
                                         "the lowest loss reachable; set it for losses with a floor")
    min_dropout_retention: float = threshold(
        0.45, "measured on the zoo (docs/probes/overfit.md): with dropout off the model fits the "
        "batch; switched on alone, healthy dropout layers keep 0.62-1.0 of the fitted accuracy "
        "gap, nn.Dropout(0.9) (p meant as keep probability) 0.23-0.25", "a classifier that "
        "did not fit, fits with dropout off, and keeps less than this share of its batch accuracy "
        "(above chance) through one dropout layer: fail, naming the layer")
    skip_reason: str = threshold("", "the user's own judgement (nndiag_config)",
                                 "skip the probe, stating why (e.g. a GAN with two optimizers)")


# ---- the probe -------------------------------------------------------------------------------

class OverfitProbe(Probe):
    """Trains a fresh model on one fixed batch until it is fitted or the step budget ends."""

    id = "overfit"
    cost = 90  # the order of a check: cheapest first
    hint = ('a model that cannot fit one small batch has a bug in the model, the loss or the training '
            'step: check the learning rate, that zero_grad/backward/step all run, and that targets '
            'match the loss')
    description = "Can the model fit one fixed batch (every sample right, loss near its floor) within a budget?"
    Config = OverfitConfig

    def charts(self, result):
        """The loss per step on the one batch, with the target and the loss floor: nndiag.charts data."""
        from nndiag import chartkit

        return chartkit.charts_or_note(chartkit.loss_curve_chart(result), result)

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        if cfg.skip_reason:
            out.skip(str(cfg.skip_reason))
        fit = shared_fit_run(ctx, cfg)
        if fit.note:
            out.finding("pass", fit.note, where="batch")
        if fit.run is None:
            out.metric("samples", fit.n)
            out.skip(f"the batch has {fit.n} sample(s), fewer than {int(cfg.min_samples)}: fitting so "
                     "few says little about whether the model learns (a BatchNorm layer, for one, "
                     "normalises 2 samples to +-1). Give a larger first batch to run this check.")
        if _fails(fit.run, cfg):
            # A fail must not hang on one draw of the weights: a healthy but fragile model (stock
            # SqueezeNet at 32x32) failed on one seed, and on another thread count, and learned
            # on the others. The second run costs only where the first one failed.
            second = confirm_fit_run(ctx, cfg)
            # Only a second run that fits the batch, or closes most of the loss gap (fit_drop: what
            # healthy classifiers that fit close), makes the fail a matter of the draw; one that
            # merely learns slowly confirms it (a borderline bug stays failed).
            if second is not None and (second.fitted_by or (
                    not _fails(second, cfg) and (measures(second, cfg).get("drop") or 0) >= cfg.fit_drop)):
                out.metric("confirmation_failed", False)
                out.skip(f"cannot decide: fitting the batch failed from this initialisation "
                         f"(loss {fit.run.curve[0]:.3g} -> {fit.run.curve[-1]:.3g}) but a second one "
                         f"fits or nearly fits it (seed + {CONFIRM_SEED_OFFSET}: loss {second.curve[0]:.3g} -> "
                         f"{second.curve[-1]:.3g}), so whether it learns depends on the draw of the "
                         "weights. Fragile, not broken; a better initialisation or a smaller "
                         "learning rate makes it robust.")
            out.metric("confirmation_failed", second is not None)
        dropout = None
        if _undecided(fit.run, cfg):
            # Learning but not fitted: is dropout what stops it? (a second fit with dropout off)
            dropout = check_dropout(ctx, cfg, fit.run)
        report(out, fit.run, cfg, dropout)


def _fails(run, cfg) -> bool:
    """True when a finite, unfitted run would be judged a fail (a non-finite loss is the nan
    probe's, and is judged at once: no confirmation)."""
    if run is None or run.fitted_by or not run.curve or not math.isfinite(run.curve[-1]):
        return False
    return decide(run, measures(run, cfg), cfg).startswith("fail")


def _undecided(run, cfg) -> bool:
    """True when a finite run of the whole budget did not fit and would be judged 'skip'."""
    if run is None or run.fitted_by or run.cut_by_time or not run.curve or \
            not math.isfinite(run.curve[-1]):
        return False
    return decide(run, measures(run, cfg), cfg) == "skip"


@hookimpl
def nndiag_register_probes():
    """Register the overfit probe."""
    return [OverfitProbe]
