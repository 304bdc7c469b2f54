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
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nndiag.batches import batch_size, iter_tensors, split_batch, take_samples
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.probe import TrainingRun, Outcome, Probe, ProbeContext, threshold

_REGRESSION_LOSSES = (torch.nn.MSELoss, torch.nn.L1Loss, torch.nn.SmoothL1Loss, torch.nn.HuberLoss)


@dataclass(frozen=True)
class OverfitConfig:
    """Settings of the overfit probe."""

    samples: int = threshold(0, "issue 9: cutting a batch the probe does not understand (an "
                             "EmbeddingBag's flat tokens with offsets) breaks it, so the whole first "
                             "batch is fitted", "0: the whole first batch; N: its first N samples, "
                             "only when every tensor of the batch has the same first dimension")
    min_samples: int = threshold(4, "nndiag choice: a batch of 2 (BatchNorm at batch size 2) fits "
                                 "or fails to fit for reasons of its own; XOR's 4 points are the "
                                 "smallest meaningful batch", "skip below this many samples")
    steps: int = threshold(300, "tutorial checklist runs 100 steps (tutorials/002); measured on the "
                               "zoo: healthy classifiers fit in 1-250 steps (docs/probes/overfit.md)",
                           "step budget; not fitted within it is 'not decided' (skip), never warn")
    max_seconds: float = threshold(60.0, "a safety net for huge models, not a limit the verdict "
                                   "depends on: a run it cuts is a skip (docs/probes/overfit.md)",
                                   "time budget (wall clock); when it cuts the run the probe skips")
    target_fraction: float = threshold(0.02, "tutorial checklist: loss < 0.1 after 100 steps, i.e. "
                                       "~4% of ln 10 (tutorials/002)", "a loss with a known floor "
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
    skip_reason: str = threshold("", "the user's own judgement (nndiag_config)",
                                 "skip the probe, stating why (e.g. a GAN with two optimizers)")


# ---- classification: what counts as "every sample classified right" -------------------------

@dataclass(frozen=True)
class Classification:
    """How to score a batch: ``correct(output)`` -> bool tensor over scored positions."""

    kind: str  # "multiclass", "one-hot", "binary", "multilabel"
    correct: Callable[[torch.Tensor], torch.Tensor]
    chance: float  # accuracy of always predicting the batch's most common class
    classes: int


def _is_logits_loss(loss_fn: Any) -> bool:
    if isinstance(loss_fn, torch.nn.BCEWithLogitsLoss):
        return True
    name = getattr(loss_fn, "__name__", "") or type(loss_fn).__name__
    return "logit" in name.lower()


def detect_classification(output: Any, targets: Any, loss_fn: Any) -> Classification | None:
    """The scoring rule for ``output``/``targets``, or None when this is not classification.

    * ``(N, C, ...)`` float output, integer targets ``(N, ...)`` in ``[0, C)`` (negative = ignored):
      argmax over dim 1;
    * ``(N, C)`` output with one-hot float targets: argmax of both;
    * ``(N,)``/``(N, 1)`` output with 0/1 targets of the same size: threshold 0 for a with-logits
      loss (or an output outside [0, 1] with a non-regression loss), else 0.5;
    * ``(N, K)`` output with 0/1 targets and a BCE loss: multi-label, every label must be right.
    """
    if not isinstance(output, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return None
    if not output.is_floating_point() or output.dim() == 0 or targets.dim() == 0:
        return None
    out = output.detach()
    tgt = targets.detach()
    if not tgt.is_floating_point() and tgt.dtype != torch.bool:
        if out.dim() < 2 or out.shape[1] < 2 or tuple(tgt.shape) != (out.shape[0], *out.shape[2:]):
            return None
        valid = tgt >= 0
        c = out.shape[1]
        if not valid.any() or int(tgt[valid].max()) >= c:
            return None
        counts = torch.bincount(tgt[valid].flatten(), minlength=c)
        chance = float(counts.max()) / float(valid.sum())
        return Classification("multiclass", lambda o: (o.argmax(1) == tgt)[valid], chance, c)
    tgt = tgt.float()
    if not bool(((tgt == 0) | (tgt == 1)).all()):
        return None
    if out.shape == tgt.shape and out.dim() == 2 and out.shape[1] >= 2:
        if bool((tgt.sum(1) == 1).all()):
            labels = tgt.argmax(1)
            counts = torch.bincount(labels, minlength=out.shape[1])
            chance = float(counts.max()) / labels.numel()
            return Classification("one-hot", lambda o: o.argmax(1) == labels, chance, out.shape[1])
        if isinstance(loss_fn, (torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)) or "binary_cross" in (
                getattr(loss_fn, "__name__", "") or ""):
            cut = 0.0 if _is_logits_loss(loss_fn) else 0.5
            # multi-label: a sample is right when all its labels are; chance = most common label row
            rows = [tuple(r) for r in tgt.tolist()]
            chance = max(rows.count(r) for r in set(rows)) / len(rows)
            return Classification("multilabel", lambda o: ((o > cut).float() == tgt).all(1), chance, 2)
        return None
    if out.numel() != tgt.numel() or out.shape[0] != tgt.shape[0] or out.numel() != out.shape[0]:
        return None
    outside = bool(((out < 0) | (out > 1)).any())
    logits = _is_logits_loss(loss_fn) or (outside and not isinstance(loss_fn, _REGRESSION_LOSSES))
    cut = 0.0 if logits else 0.5
    flat = tgt.reshape(-1)
    pos = float(flat.mean())
    return Classification("binary", lambda o: (o.reshape(-1) > cut).float() == flat, max(pos, 1 - pos), 2)


def detect_floor(loss_fn: Any, output: Any, targets: Any) -> tuple[float, str]:
    """The lowest loss reachable on this batch and why (0 when nothing says otherwise)."""
    if isinstance(loss_fn, torch.nn.CrossEntropyLoss) and loss_fn.label_smoothing > 0 and isinstance(
            output, torch.Tensor) and output.dim() >= 2:
        eps, c = float(loss_fn.label_smoothing), output.shape[1]
        p_true, p_other = 1 - eps + eps / c, eps / c
        h = -p_true * math.log(p_true) - (c - 1) * p_other * math.log(p_other)
        return h, f"CrossEntropyLoss(label_smoothing={eps:g}) cannot go below its target entropy"
    if isinstance(loss_fn, (torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)) and isinstance(
            targets, torch.Tensor) and targets.is_floating_point() and loss_fn.weight is None:
        t = targets.detach().clamp(1e-12, 1 - 1e-12)
        soft = ((targets > 0) & (targets < 1)).any()
        if bool(soft) and loss_fn.reduction == "mean":
            h = float((-(t * t.log() + (1 - t) * (1 - t).log())).mean())
            return h, "BCE with soft targets cannot go below the targets' entropy"
    return 0.0, ""


def constant_baseline(loss_fn: Any, targets: Any) -> tuple[float, str] | None:
    """The loss of the best constant prediction (the loss's "chance level"), or None when unknown.

    MSELoss: the targets' variance (predict the batch mean); L1Loss: the mean absolute deviation from
    the median; CrossEntropyLoss (integer targets, no weights or smoothing): the entropy of the
    batch's class frequencies (predict the class prior); BCE with 0/1 targets: their binary entropy.
    """
    if not isinstance(targets, torch.Tensor) or targets.dim() == 0 or getattr(loss_fn, "reduction", "") != "mean":
        return None
    t = targets.detach()
    if isinstance(loss_fn, torch.nn.CrossEntropyLoss):
        if t.is_floating_point() or loss_fn.weight is not None or loss_fn.label_smoothing > 0:
            return None
        t = t[t != loss_fn.ignore_index]
        if t.numel() == 0 or int(t.min()) < 0:
            return None
        p = torch.bincount(t.flatten()).float()
        p = p[p > 0] / p.sum()
        return float(-(p * p.log()).sum()), "predicting the batch's class frequencies"
    if not t.is_floating_point():
        return None
    t = t.float()
    if isinstance(loss_fn, (torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)):
        if loss_fn.weight is not None or not bool(((t == 0) | (t == 1)).all()):
            return None
        m = float(t.mean())
        h = 0.0 if m in (0.0, 1.0) else -(m * math.log(m) + (1 - m) * math.log(1 - m))
        return h, "predicting the batch's share of positives"
    if isinstance(loss_fn, torch.nn.MSELoss):
        return float(((t - t.mean(0)) ** 2).mean()), "predicting the batch mean of the targets"
    if isinstance(loss_fn, torch.nn.L1Loss):
        return float((t - t.median(0).values).abs().mean()), "predicting the batch median of the targets"
    return None


# ---- the run and its verdict -----------------------------------------------------------------

_KNOWN_FLOOR_LOSSES = (torch.nn.MSELoss, torch.nn.L1Loss, torch.nn.SmoothL1Loss, torch.nn.HuberLoss,
                       torch.nn.CrossEntropyLoss, torch.nn.NLLLoss, torch.nn.BCELoss,
                       torch.nn.BCEWithLogitsLoss)
_KNOWN_FLOOR_FUNCTIONS = {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy",
                          "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"}


def floor_is_known(loss_fn: Any) -> bool:
    """True for the torch losses whose lowest value nndiag knows (0, or the targets' entropy)."""
    if isinstance(loss_fn, _KNOWN_FLOOR_LOSSES):
        return True
    return getattr(loss_fn, "__name__", "") in _KNOWN_FLOOR_FUNCTIONS


@dataclass
class FitRun:
    """What the fitting loop saw: the loss of every step (before its update), the batch accuracy
    of the scored steps, and how the run ended."""

    curve: list[float]
    accs: list[float]
    scorer: Classification | None
    floor: float
    floor_why: str
    floor_known: bool  # the loss is a torch loss under nndiag's own step
    baseline: tuple[float, str] | None
    target: float  # the loss target (NaN when the loss is not judged against a target)
    fitted_by: str  # "" (not fitted), "accuracy", "accuracy in eval mode", "loss", "plateau"
    cut_by_time: bool
    max_steps: int
    seconds: float
    n: int


def _median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2]


def measures(run: FitRun, cfg: OverfitConfig) -> dict[str, Any]:
    """The numbers the verdict reads, from the run (all recorded as metrics).

    ``drop``: the share of the gap from the initial loss to the floor closed by the end of the run
    (median of the last 10 losses); ``late_progress``: the share of that gap closed over the last
    ``plateau_window`` steps; ``accuracy_gain``: the share of the gap from chance to 100% accuracy
    closed (mean of the last scores); ``moved``: the loss's range over the run relative to its
    initial value; ``baseline_gain``: the share of the gap from the best constant prediction's loss
    to the floor closed.
    """
    finite = [c for c in run.curve if math.isfinite(c)]
    initial = run.curve[0]
    end = _median(finite[-10:])
    gap = initial - run.floor
    m: dict[str, Any] = {"end_loss": end, "drop": (initial - end) / gap if gap > 0 else None}
    w = int(cfg.plateau_window)
    if gap > 0 and len(finite) >= w + 10:
        m["late_progress"] = (_median(finite[-w - 10:-w]) - end) / gap
    else:
        m["late_progress"] = None
    m["moved"] = (max(finite) - min(finite)) / max(abs(initial), 1e-12)
    m["below_floor"] = bool(run.floor_known and gap > 0 and end < run.floor - 0.01 * gap)
    if run.scorer is not None and run.accs and run.scorer.chance < 1.0:
        k = max(1, min(10, len(run.accs) // 3))
        acc = sum(run.accs[-k:]) / k
        m["accuracy"] = acc
        m["accuracy_gain"] = (acc - run.scorer.chance) / (1.0 - run.scorer.chance)
        earlier = run.accs[:-k][-k:]
        m["accuracy_late_gain"] = (acc - sum(earlier) / len(earlier)) if earlier else None
    if run.baseline is not None and run.baseline[0] - run.floor > 0:
        m["constant_baseline_loss"] = run.baseline[0]
        m["baseline_gain"] = (run.baseline[0] - end) / (run.baseline[0] - run.floor)
    return m


def decide(run: FitRun, m: dict[str, Any], cfg: OverfitConfig) -> str:
    """The verdict of a finished, finite run that did not fit the batch: one of ``fail-drop``,
    ``fail-accuracy``, ``fail-stalled``, ``fail-baseline``, ``fail-still``, ``pass-plateau`` or
    ``skip``. Only a run of the whole step budget is ever failed: a time cut is a skip."""
    if run.cut_by_time:
        return "skip"
    drop, late = m["drop"], m["late_progress"]
    plateaued = late is not None and late < cfg.plateau_progress
    gain = m.get("accuracy_gain")
    if gain is not None:
        loss_flat = drop is None or drop < cfg.min_drop or m["below_floor"]
        if gain < cfg.min_accuracy_gain and loss_flat:
            return "fail-accuracy" if drop is None or m["below_floor"] or drop >= cfg.min_drop \
                else "fail-drop"
        base = m.get("baseline_gain")
        if gain < cfg.min_accuracy_gain and base is not None and base < cfg.min_drop:
            return "fail-baseline"  # the loss fell only to the class prior's: nothing else learned
        acc_flat = m.get("accuracy_late_gain") is None or m["accuracy_late_gain"] <= 0.01
        if gain < cfg.stall_accuracy_gain and plateaued and acc_flat:
            return "fail-stalled"
        return "skip"
    if run.floor_known and drop is not None:
        if drop < cfg.min_drop:
            return "fail-drop"
        if m.get("baseline_gain") is not None and m["baseline_gain"] < cfg.min_drop:
            return "fail-baseline"
        return "skip"
    if m["moved"] < cfg.still_limit:
        return "fail-still"
    if drop is not None and drop >= cfg.converged_drop and plateaued:
        return "pass-plateau"
    return "skip"


@dataclass(frozen=True)
class SharedFit:
    """The fitting run as shared between probes: the run (None below ``min_samples``), the batch's
    sample count and a note on the batch."""

    run: FitRun | None
    n: int
    note: str


def shared_fit_run(ctx: ProbeContext, cfg: OverfitConfig) -> SharedFit:
    """Train a fresh model on the first batch at the configured optimizer until it is fitted or the
    budget ends; computed once per run and settings, shared with lr-range (which reads what the
    configured LR does over hundreds of steps: a blow-up after 40-180 steps)."""
    def compute() -> SharedFit:
        bench = ctx.bench
        s = bench.subject
        batch, note = _the_batch(bench.first_batch(), int(cfg.samples))
        nndiag_step = s.train_step is None and s.training_step is None and s.loss_fn is not None
        targets = split_batch(batch, s.data_source)[1] if nndiag_step else _targets_or_none(batch)
        n = batch_size(targets) if isinstance(targets, torch.Tensor) and targets.dim() > 0 \
            else batch_size(batch)
        if n < int(cfg.min_samples):
            return SharedFit(None, n, note)
        model = bench.fresh_model()
        opt = bench.make_optimizer(model)
        return SharedFit(OverfitProbe(cfg)._fit(ctx, model, opt, batch, targets, n, nndiag_step), n, note)

    key = ("overfit_run",) + tuple(str(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                                   if f.name != "skip_reason")
    return ctx.shared(key, compute)


def fixed_lr_blowup(curve: list[float]) -> int | None:
    """The step (from 1) at which a run at a fixed LR blew up, or None: the loss ended above where
    it started (median of the last 10) after peaking above 10x its start, or became non-finite
    right after rising above its start. A loss that spikes and recovers, or turns NaN from a low
    value (an overflowing op, not the LR), is no blow-up."""
    if not curve or not math.isfinite(curve[0]) or curve[0] <= 0:
        return None
    start = curve[0]
    finite = [c for c in curve if math.isfinite(c)]
    nonfinite = len(finite) < len(curve)
    end = _median(finite[-10:]) if finite else math.inf
    rose = nonfinite and len(finite) >= 3 and finite[-1] > start and finite[-1] > finite[-2] > finite[-3]
    if not (rose or (end > start and max(finite) > 10 * start)):
        return None
    low = min(range(len(finite)), key=finite.__getitem__)
    return next((i + 1 for i in range(low, len(finite)) if finite[i] > start), len(finite) + 1)


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
        self._report(out, fit.run)

    # ---- the loop ----------------------------------------------------------------------------
    def _fit(self, ctx, model, opt, batch, targets, n: int, nndiag_step: bool) -> FitRun:
        cfg, bench, s = self.config, ctx.bench, ctx.bench.subject
        scorer: Classification | None = None
        floor, floor_why = (0.0, "")
        if cfg.loss_floor is not None:
            floor, floor_why = float(cfg.loss_floor), "set in the config"
        if not nndiag_step:  # the output is not ours to see during the step: look once, before
            probe_out = _forward_or_none(bench, model, batch)
            scorer = detect_classification(probe_out, targets, s.loss_fn) if probe_out is not None else None
            if cfg.loss_floor is None and probe_out is not None and s.training_step is None \
                    and s.train_step is None:
                floor, floor_why = detect_floor(s.loss_fn, probe_out, targets)
        run = FitRun([], [], scorer, floor, floor_why, nndiag_step and (
            floor_is_known(s.loss_fn) or cfg.loss_floor is not None), constant_baseline(s.loss_fn, targets)
            if nndiag_step else None, math.nan, "", False, max(1, int(cfg.steps)), 0.0, n)
        gap = None  # initial loss - floor, known after step 0
        start = time.perf_counter()
        for step in range(run.max_steps):
            right = None
            if nndiag_step:
                opt.zero_grad(set_to_none=True)
                output = bench.forward(model, batch)
                loss_t = bench.loss_of_output(output, batch)
                bench.backward(loss_t)
                opt.step()
                loss = float(loss_t.detach())
                if step == 0:
                    run.scorer = detect_classification(output, targets, s.loss_fn)
                    if cfg.loss_floor is None:
                        run.floor, run.floor_why = detect_floor(s.loss_fn, output, targets)
                if run.scorer is not None:
                    hit = run.scorer.correct(output.detach())
                    run.accs.append(float(hit.float().mean()))
                    right = bool(hit.all())
            else:
                loss = bench.train_one_step(model, opt, batch)
            run.curve.append(loss)
            if not math.isfinite(loss):
                # Every training nndiag runs is watched: the nan probe locates the producer.
                ctx.observe_non_finite(TrainingRun(
                    f"the overfit run (one batch of {n})", (batch,), step, "loss",
                    f"the loss is {loss}"))
                break
            if step == 0:
                # The scale is the larger of the initial loss and the loss of the best constant
                # prediction, so that weights that already fit the batch (a trained model: loss
                # 1e-6 where predicting the mean costs 0.5) count as fitted.
                scale = max(loss, run.baseline[0]) if run.baseline is not None else loss
                gap = loss - run.floor if loss > run.floor else None
                if scale > run.floor:
                    run.target = run.floor + cfg.target_fraction * (scale - run.floor)
            run.fitted_by = self._fitted(ctx, model, batch, run, step, loss, gap, right)
            if run.fitted_by:
                break
            if time.perf_counter() - start > cfg.max_seconds:
                run.cut_by_time = step + 1 < run.max_steps
                break
        run.seconds = time.perf_counter() - start
        if run.scorer is not None and not nndiag_step and not run.fitted_by and math.isfinite(run.curve[-1]):
            run.accs.append(_score_now(model, lambda m: bench.forward(m, batch), run.scorer)[1])
        return run

    def _fitted(self, ctx, model, batch, run: FitRun, step: int, loss: float, gap: float | None,
                right: bool | None) -> str:
        """How the batch counts as fitted after this step ("" while it does not)."""
        cfg, bench = self.config, ctx.bench
        below_target = math.isfinite(run.target) and loss < run.target
        if run.scorer is not None and run.scorer.chance < 1.0:
            # every sample right, and the loss well on its way (a lucky start is not a fit)
            dropped = below_target or gap is None or (run.curve[0] - loss) >= cfg.fit_drop * gap
            if not dropped:
                return ""
            if right:
                return "accuracy"
            last = step + 1 == run.max_steps
            if step % max(1, int(cfg.eval_every)) and not last:
                return ""
            forward = lambda m: bench.forward(m, batch)  # noqa: E731
            if right is None:  # the user's step: score by an extra forward, train mode first
                ok, acc = _score_now(model, forward, run.scorer)
                run.accs.append(acc)
                if ok:
                    return "accuracy"
            ok, _ = _score_now(model, forward, run.scorer, eval_mode=True)
            return "accuracy in eval mode" if ok else ""
        if run.floor_known or run.scorer is not None:
            return "loss" if below_target else ""
        # an unknown floor: below 2% of the initial loss is fitted whatever the floor; a loss that
        # fell far and stopped falling has converged to its floor
        if below_target and run.floor == 0.0:
            return "loss"
        w = int(cfg.plateau_window)
        if gap is not None and len(run.curve) >= w + 10 and len(run.curve) % 10 == 0:
            end = _median(run.curve[-10:])
            if (run.curve[0] - end) >= cfg.converged_drop * gap and \
                    (_median(run.curve[-w - 10:-w]) - end) < cfg.plateau_progress * gap:
                return "plateau"
        return ""

    # ---- the report --------------------------------------------------------------------------
    def _report(self, out: Outcome, run: FitRun) -> None:
        cfg = self.config
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
        self._verdict(out, run, m, verdict, what, budget)

    def _verdict(self, out: Outcome, run: FitRun, m: dict, verdict: str, what: str, budget: str) -> None:
        cfg, n = self.config, run.n
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


def _the_batch(batch: Any, samples: int) -> tuple[Any, str]:
    """The batch to fit, and a note when ``samples`` asked for a cut the batch cannot take."""
    if samples <= 0:
        return batch, ""
    sizes = {int(t.shape[0]) for t in iter_tensors(batch) if t.dim() > 0}
    if len(sizes) != 1:
        return batch, (f"overfit.samples={samples} was not applied: the batch's tensors differ in their "
                       "first dimension (e.g. flat tokens with offsets), so the whole batch is fitted")
    return take_samples(batch, samples), ""


def _targets_or_none(batch: Any) -> Any:
    try:
        return split_batch(batch)[1]
    except SubjectError:
        return None


def _forward_or_none(bench: Any, model: torch.nn.Module, batch: Any) -> Any:
    """The model's output on the batch without a gradient, or None when the batch is not the
    ``(inputs, targets)`` the model takes (a training_step with its own batch format)."""
    try:
        with torch.no_grad():
            return bench.forward(model, batch)
    except SubjectError:
        return None


def _score_now(model: torch.nn.Module, forward: Callable[[torch.nn.Module], Any], scorer: Classification,
               eval_mode: bool = False) -> tuple[bool, float]:
    """(all right, accuracy) of the model on the batch now, by one forward without a gradient;
    in eval mode (dropout off, BatchNorm on its running statistics) when asked, with every
    module's train/eval flag restored after. An output that cannot be scored counts as wrong."""
    flags = [m.training for m in model.modules()]
    try:
        if eval_mode:
            model.eval()
        with torch.no_grad():
            output = forward(model)
        right = scorer.correct(output.detach())
    except Exception:  # noqa: BLE001 - an eval-mode output of another shape: not scoreable
        return False, 0.0
    finally:
        for m, flag in zip(model.modules(), flags):
            m.training = flag
    return bool(right.all()), float(right.float().mean())


@hookimpl
def nndiag_register_probes():
    """Register the overfit probe."""
    return [OverfitProbe]
