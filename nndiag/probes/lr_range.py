"""``lr-range``: Smith's learning-rate range test, with suggestions and a verdict on the configured LR.

A fresh model is trained with the subject's own optimizer (and ``train_step``/``training_step`` when
given) for ``num_it`` steps while the learning rate grows exponentially from ``start_lr`` to
``end_lr``, cycling over the first probe batches. The loss of each step is smoothed (bias-corrected
EMA) and the sweep stops once the smoothed loss exceeds ``diverge_factor`` times its best. From the
smoothed curve come three suggestions (steepest descent against log LR, fastai's valley, minimum/10)
and a verdict on the LR the optimizer was configured with. The arithmetic lives in
:mod:`nndiag.lr_sweep`; documented with measured examples in docs/probes/lr-range.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from nndiag.batches import batch_size
from nndiag.hookspecs import hookimpl
from nndiag.lr_sweep import BlowupWatch, EmaSmoother, SweepCurve, exp_lrs, record_step, suggest
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.probes.lr_held import held_drop, relapse, rescue

_LR_TABLE = ("the LR range test defaults of fastai lr_find, Lightning Tuner.lr_find and "
             "torch-lr-finder, https://github.com/davidtvs/pytorch-lr-finder")


@dataclass(frozen=True)
class LrRangeConfig:
    """Settings of the lr-range probe."""

    start_lr: float = threshold(1e-7, f"fastai lr_find start_lr ({_LR_TABLE})", "first LR of the sweep")
    end_lr: float = threshold(10.0, f"fastai lr_find end_lr ({_LR_TABLE})", "last LR of the sweep")
    num_it: int = threshold(100, f"torch-lr-finder, Lightning and fastai all use 100 ({_LR_TABLE})",
                            "steps of the sweep")
    beta: float = threshold(0.98, f"Lightning/fastai bias-corrected EMA ({_LR_TABLE})", "loss smoothing")
    diverge_factor: float = threshold(4.0, f"Lightning/fastai stop at 4 x best ({_LR_TABLE})",
                                      "stop when the smoothed loss exceeds this multiple of its best")
    stop_on_blowup: bool = threshold(True, "nndiag choice, measured: the 4 x best rule fires 1-2 decades "
                                     "late or never on the reference MLP/CNN (docs/probes/lr-range.md)",
                                     "also stop once the median loss is back above its untrained level")
    samples: int = threshold(256, "nndiag choice: a few loader batches (4 of 64) so the sweep sees "
                             "more than one batch; cycled", "samples of the probe batches cycled over")
    min_descent: float = threshold(0.1, "nndiag choice, measured: the healthy reference models fall "
                                   "25-100%, flat broken ones 0% (docs/probes/lr-range.md)",
                                   "below this relative fall of the loss (median of 5 raw losses vs. "
                                   "its untrained level) the curve is called flat: no verdict")
    low_warn: float = threshold(0.03, "measured on the zoo: docs/probes/lr-range.md",
                                "warn when the configured LR is below this fraction of the LR where "
                                "the sweep's loss starts to fall (lr_over_descent_start)")
    low_fail: float = threshold(0.01, "measured on the zoo: docs/probes/lr-range.md",
                                "fail below this fraction: the configured LR barely moves the loss")
    high_warn: float = threshold(0.5, "measured on the zoo: docs/probes/lr-range.md",
                                 "warn when the configured LR is above this fraction of the LR where "
                                 "the sweep diverged (lr_over_divergence): at a fixed LR training "
                                 "blows up below the sweep's divergence point, after tens of steps")
    high_fail: float = threshold(1.0, "the sweep itself diverged at or below the configured LR",
                                 "fail at or above this fraction of the divergence LR")
    relapse_fail: float = threshold(2.0, "measured on the zoo: held-LR runs of healthy programs "
                                    "peak at <= 1.04x their start after descending, the LR-too-high "
                                    "bugs at 3.98-64x (docs/probes/lr-range.md)",
                                    "fail when the run at the configured LR, after falling, spikes "
                                    "to this multiple of its start (held_relapse)")
    stall_drop: float = threshold(0.15, "measured on the zoo: held-LR runs of healthy programs fall "
                                  ">= 0.36 of their start, the LR-too-low bugs <= 0.06 "
                                  "(docs/probes/lr-range.md)", "on a flat sweep, a held-LR run "
                                  "that fell less than this share of its start has stalled")
    rescue_factors: tuple[float, ...] = threshold((10.0, 100.0), "nndiag choice: 'an LR 100x too low' is the "
                                      "class named by the bug reports (docs/probes/lr-range.md)",
                                      "on a flat sweep with a stalled held run, the LR multiples "
                                      "tried on the same batch and initial weights")
    rescue_drop: float = threshold(0.5, "measured on the zoo: healthy held-LR runs fall 0.36-0.99 "
                                   "of their start, median 0.87 (docs/probes/lr-range.md)", "a rescue run that "
                                   "falls this share of its start shows the higher LR trains")
    skip_reason: str = threshold("", "the user's own judgement (nndiag_config)",
                                 "skip the probe, stating why (e.g. a scheduler-driven LR)")


def _group_lrs(opt: torch.optim.Optimizer) -> list[float] | None:
    lrs = []
    for g in opt.param_groups:
        if "lr" not in g:
            return None
        lr = g["lr"]
        lrs.append(float(lr.detach()) if isinstance(lr, torch.Tensor) else float(lr))
    return lrs


def _set_group_lrs(opt: torch.optim.Optimizer, lrs: list[float]) -> None:
    for g, lr in zip(opt.param_groups, lrs):
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(lr)
        else:
            g["lr"] = lr


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3g}"


class LrRangeProbe(Probe):
    """Smith's LR range test on a fresh model; suggestions and a verdict on the configured LR."""

    id = "lr-range"
    cost = 100  # the order of a check: cheapest first
    hint = "set the optimizer's learning rate inside the range the lr-range probe suggests"
    description = "LR range test: loss over an LR sweep, suggested LRs, verdict on the configured LR."
    Config = LrRangeConfig

    def charts(self, result):
        """The loss over the LR sweep with the suggestions, the good range and the configured LR: nndiag.charts data."""
        from nndiag import chartkit

        return chartkit.charts_or_note(chartkit.lr_sweep_chart(result), result)

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        if cfg.skip_reason:
            out.skip(str(cfg.skip_reason))
        bench = ctx.bench
        batches = bench.probe_batches(cfg.samples)
        model = bench.fresh_model()
        opt = bench.make_optimizer(model)
        base = _group_lrs(opt)
        if base is None:
            out.skip(f"the optimizer {type(opt).__name__} has a parameter group without an 'lr' "
                     "setting, so there is no learning rate to sweep.")
        ref = next((i for i, lr in enumerate(base) if lr > 0), None)
        configured = base[ref] if ref is not None else 0.0
        # Every group is scaled by the same factor, keeping the user's ratios between groups; the
        # curve's x axis is the LR of the first group with a nonzero LR (all equal when none has).
        ratios = [lr / configured for lr in base] if ref is not None else [1.0] * len(base)

        curve = SweepCurve(num_it=cfg.num_it)
        smoother, best = EmaSmoother(cfg.beta), [math.inf]
        # Small batches make single-step losses noisy (a batch of 2 swings by 2x): the median that
        # tells a blow-up from noise then spans enough steps to cover ~32 samples (5 at 8+).
        window = min(15, max(5, math.ceil(32 / max(1, batch_size(batches[0])))))
        watch = BlowupWatch(cfg.num_it // 10, cfg.min_descent, window=window)
        start = time.perf_counter()
        for i, lr in enumerate(exp_lrs(cfg.start_lr, cfg.end_lr, cfg.num_it)):
            _set_group_lrs(opt, [lr * r for r in ratios])
            loss = bench.train_one_step(model, opt, batches[i % len(batches)])
            if record_step(curve, smoother, best, lr, loss, cfg.diverge_factor):
                break
            if watch.update(loss) and cfg.stop_on_blowup:
                curve.stop = "blowup"
                break
        seconds = time.perf_counter() - start

        if not math.isfinite(curve.losses[0]):
            out.data["lrs"], out.data["losses"] = curve.lrs, curve.losses
            out.metric("configured_lr", configured)
            out.warn(f"Cannot judge the learning rate: the loss is already {curve.losses[0]} on the first "
                     "batch, before any update, so the learning rate is not what breaks it. Find where "
                     "the NaN/Inf comes from first (see the nan probe).", value=curve.losses[0],
                     metric="first_loss")
            out.summary = f"cannot judge: the loss is {curve.losses[0]} before any update"
            return
        sug = suggest(curve, median_window=window)
        descends = sug.descent >= cfg.min_descent
        # Where training at a fixed LR would blow up: the first LR past the curve's lowest point at
        # which the (median) loss is back above its untrained level, or where the sweep had to stop
        # (NaN/Inf, smoothed > diverge_factor x best, blow-up), whichever comes first. On a flat
        # curve the lowest point is noise and the relative 4 x best rule trips on harmless rises
        # near zero (trained weights: 1e-3 -> 4e-3), so there only NaN/Inf counts.
        marks = [curve.diverged_at if descends or curve.stop == "nonfinite" else None]
        marks += [sug.lr_blowup] if descends else []
        lr_div = min((m for m in marks if m is not None), default=None)
        if not descends and ctx.subject.trained and lr_div is None:
            out.data["lrs"], out.data["losses"], out.data["smoothed"] = curve.lrs, curve.losses, curve.smoothed
            out.metric("configured_lr", configured)
            out.metric("start_loss", sug.start_level)
            out.skip(f"the weights given ({ctx.subject.weights.name}) already sit at a low loss "
                     f"({sug.start_level:.3g}) that no learning rate lowers; the range test is about "
                     "training from the initial weights. Run it without --weights to judge the "
                     "configured learning rate.")
        out.data["lrs"] = curve.lrs
        out.data["losses"] = curve.losses
        out.data["smoothed"] = curve.smoothed
        out.metric("configured_lr", configured)
        out.metric("suggested_lr_steepest", sug.steepest)
        out.metric("suggested_lr_valley", sug.valley)
        out.metric("suggested_lr_minimum", sug.minimum_div10)
        out.metric("lr_at_min_loss", sug.lr_at_min)
        out.metric("lr_diverged", lr_div)
        out.metric("descent", sug.descent)
        out.metric("start_loss", sug.start_level)
        out.metric("steps", len(curve.lrs))
        out.metric("param_groups", len(base))
        out.metric("sweep_seconds", seconds)
        out.data["stop"] = curve.stop
        fixed = None
        if configured > 0 and not ctx.subject.trained:
            from nndiag.probes.overfit import OverfitConfig, fixed_lr_blowup, shared_fit_run

            # What the configured LR does when held: the overfit run (shared, computed once) trains
            # at it for up to 300 steps. Past the stability limit the loss falls, then grows
            # geometrically after tens of steps or spikes and never recovers, which a
            # one-step-per-LR sweep cannot see; far below the good range it barely moves.
            fit = shared_fit_run(ctx, OverfitConfig())
            if fit.run is not None:
                run = fit.run
                fixed = (fixed_lr_blowup(run.curve), len(run.curve), fit.n, run.curve,
                         relapse(run.curve, cfg.min_descent))
                drop = held_drop(run.curve)
                out.metric("held_drop", drop)
                out.metric("held_relapse", fixed[4])
                full = len(run.curve) >= run.max_steps and not run.cut_by_time
                if not descends and full and drop is not None and drop < cfg.stall_drop:
                    # The sweep is flat and the held run stalled: try 10x and 100x on the same
                    # batch and weights, as many steps as the held run took (step-counted).
                    tried = rescue(ctx, cfg.rescue_factors, len(run.curve), cfg.rescue_drop)
                    fixed += (tried,)
        self._verdict(out, curve, sug, configured, lr_div, descends, len(batches), fixed)

    def _verdict(self, out: Outcome, curve: SweepCurve, sug, configured: float, lr_div: float | None,
                 descends: bool, n_batches: int, fixed=None) -> None:
        cfg = self.config
        stop = {"end": f"reached {cfg.end_lr:g}",
                "diverged": f"stopped at {_fmt(curve.diverged_at)} (smoothed loss > "
                            f"{cfg.diverge_factor:g} x best)",
                "nonfinite": f"loss became {curve.losses[-1]} at {_fmt(curve.diverged_at)}",
                "blowup": f"stopped at {_fmt(curve.diverged_at)} (loss back above its untrained level)",
                }[curve.stop]
        sweep = (f"swept {cfg.start_lr:g} to {curve.lrs[-1]:.3g} in {len(curve.lrs)} steps over "
                 f"{n_batches} batch(es), {stop}")
        # A fall of more than 100% means the loss went below zero (NLLLoss on raw outputs runs to
        # -1e8 at large LRs): the curve's landmarks then say nothing about the LR.
        start = sug.lr_descent_start if descends and sug.descent <= 1.0 else None
        over_start = configured / start if start and configured > 0 else None
        over_div = configured / lr_div if lr_div and configured > 0 else None
        out.metric("lr_descent_start", start)
        out.metric("lr_at_median_min", sug.lr_at_median_min if descends else None)
        out.metric("lr_over_descent_start", over_start)
        out.metric("lr_over_divergence", over_div)
        # the good range: from where the loss starts to fall to where it bottoms out (both read off
        # the same running median of raw losses, so the message and the suggestions agree)
        low = start * cfg.low_warn if start else None
        high = lr_div * cfg.high_warn if lr_div else None
        out.metric("good_range_low", low)
        out.metric("good_range_high", high)
        suggestions = (f"{_fmt(sug.valley)} (valley), {_fmt(sug.steepest)} (steepest descent), "
                       f"{_fmt(sug.minimum_div10)} (minimum/10)")
        summary_tail = (f"suggestions: valley {_fmt(sug.valley)}, steepest {_fmt(sug.steepest)}, "
                        f"minimum/10 {_fmt(sug.minimum_div10)}; diverged at {_fmt(lr_div)}; {sweep}")
        if configured <= 0:
            out.warn("The optimizer's learning rate is 0, so training would change nothing. Set a "
                     f"positive lr in build_optimizer (the sweep suggests {suggestions}).",
                     where="build_optimizer", value=configured, metric="configured_lr")
        elif descends and start is not None and configured > start and fixed and fixed[0] is not None:
            step, ran, n, losses = fixed[:4]
            out.metric("fixed_lr_blowup_step", step)
            last = next((c for c in reversed(losses) if math.isfinite(c)), math.nan)
            out.fail(f"At the configured learning rate {configured:.3g} the loss diverges when held: "
                     f"training one batch of {n} at it, the loss went {losses[0]:.3g} -> {last:.3g}"
                     f"{' -> ' + str(losses[-1]) if not math.isfinite(losses[-1]) else ''}, back above "
                     f"its start from step {step} of {ran}, while in the range test lower LRs (from "
                     f"{start:.3g}) make it fall. The LR is past the stability limit of this model: "
                     f"lower it; the sweep suggests {suggestions}.", where="build_optimizer",
                     value=step, metric="fixed_lr_blowup_step")
        elif descends and start is not None and configured > start and fixed and fixed[4] is not None \
                and fixed[4] >= cfg.relapse_fail:
            _, ran, n, losses, peak = fixed[:5]
            last = next((c for c in reversed(losses) if math.isfinite(c)), math.nan)
            out.fail(f"At the configured learning rate {configured:.3g} training is thrown off when the "
                     f"LR is held: training one batch of {n} at it, the loss fell, then jumped to "
                     f"{peak:.3g}x its start ({losses[0]:.3g}) and ended at {last:.3g} after {ran} "
                     f"steps, while in the range test lower LRs (from {start:.3g}) make it fall. The "
                     "first steps throw the weights far off (ReLUs die, the output settles on a "
                     f"constant): lower the LR; the sweep suggests {suggestions}.",
                     where="build_optimizer", value=peak, limit=cfg.relapse_fail, metric="held_relapse")
        elif over_div is not None and over_div >= cfg.high_warn:
            where_div = ("the loss diverged in the range test (it rose back above its untrained level, "
                         "or became NaN/Inf)")
            if over_div >= cfg.high_fail:
                msg = (f"The configured learning rate {configured:.3g} is at or above {lr_div:.3g}, where "
                       f"{where_div}, so training at it is likely to blow up or stall at a high loss.")
            else:
                msg = (f"The configured learning rate {configured:.3g} is {over_div:.2g} of {lr_div:.3g}, "
                       f"where {where_div}. Held for many steps, an LR this close to the divergence "
                       "point of a one-step-per-LR sweep typically diverges after tens of steps.")
            out.graded(msg + f" Lower it; the sweep suggests {suggestions}.", value=over_div,
                       warn_limit=cfg.high_warn - 1e-12, fail_limit=cfg.high_fail - 1e-12,
                       where="build_optimizer", metric="lr_over_divergence")
        elif descends and sug.descent > 1.0:
            out.metric("undecided", True)
            out.skip(f"cannot judge the learning rate: in the sweep the loss fell below zero (from "
                     f"{sug.start_level:.3g} to {min(c for c in curve.losses if math.isfinite(c)):.3g}), "
                     "so it is unbounded below and the curve's landmarks say nothing about the LR (see "
                     f"loss-setup: e.g. NLLLoss on outputs that are not log-probabilities); {sweep}")
        elif not descends and fixed and len(fixed) > 5 and any(r.fell for r in fixed[5]):
            _, ran, n, losses, _, tried = fixed
            ok = next(r for r in tried if r.fell)
            low = min(c for c in losses if math.isfinite(c))
            out.metric("rescue_factor", ok.factor)
            out.fail(f"The configured learning rate {configured:.3g} is far too low for this model and "
                     f"optimizer: held for {ran} steps on one batch of {n}, it moves the loss only "
                     f"{losses[0]:.3g} -> {low:.3g} ({(losses[0] - low) / abs(losses[0]):.1%}), while "
                     f"{ok.factor:g}x that LR ({configured * ok.factor:.3g}), from the same weights on "
                     f"the same batch, halves it in {ok.steps} steps. The range test cannot show it "
                     "(its loss stays flat: one step per LR is too few for this optimizer). Raise the "
                     "LR (or use an optimizer with momentum or Adam).", where="build_optimizer",
                     value=ok.factor, metric="rescue_factor")
        elif not descends or start is None:
            out.metric("undecided", True)
            out.skip(f"cannot judge the learning rate: over the whole sweep the loss fell only "
                     f"{sug.descent:.0%} below its untrained level ({sug.start_level:.3g}) (needed "
                     f"{cfg.min_descent:.0%}), so the curve has no clear descent and suggestions read "
                     "off it would be noise. Either no LR in the range lets this model learn (see the "
                     "overfit probe) or the LR it needs lies outside the sweep (set "
                     f"lr-range.start_lr/end_lr); {sweep}")
        elif configured > cfg.end_lr:
            out.skip(f"the configured learning rate {configured:.3g} lies above the swept range (up to "
                     f"{cfg.end_lr:g}); raise lr-range.end_lr to judge it")
        elif over_start is not None and over_start < cfg.low_warn:
            msg = (f"The configured learning rate {configured:.3g} is {over_start:.2g} of {start:.3g}, "
                   "the LR at which the loss starts to fall in the range test, so at it training "
                   f"barely moves the loss. Raise it; the sweep suggests {suggestions}.")
            low_fail = over_start < cfg.low_fail
            out.finding("fail" if low_fail else "warn", msg, value=over_start,
                        limit=cfg.low_fail if low_fail else cfg.low_warn, where="build_optimizer",
                        metric="lr_over_descent_start")
        verdict = "in range" if not out.findings else f"{out.findings[0].severity.value}"
        out.summary = f"configured lr {configured:.3g} ({verdict}); {summary_tail}"


@hookimpl
def nndiag_register_probes():
    """Register the lr-range probe."""
    return [LrRangeProbe]
