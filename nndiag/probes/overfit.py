"""``overfit``: can the model fit one small fixed batch, with its own optimizer, within a budget?

A fresh model is trained with the subject's optimizer (the user's ``train_step`` or
``training_step`` when given) on the first ``samples`` samples of the first batch, again and again,
until the criterion holds or the step or time budget runs out (early exit when met):

* the loss falls below ``floor + target_fraction * (initial - floor)``, where the floor is 0 except
  for losses that cannot reach 0 and say so (CrossEntropyLoss with label smoothing, BCE with soft
  targets), and
* for classification (output ``(N, C, ...)`` with integer targets, or one-hot/0-1 targets) every
  sample of the batch is classified right.

Outcomes: ``pass`` (met; the steps it took), ``warn`` (learns but misses the criterion within the
budget), ``fail`` (does not learn at all: the loss fell less than ``min_drop`` of the way, batch
accuracy stays at chance, or the loss became NaN/Inf), ``skip`` (``skip_reason`` set, for set-ups
where fitting a batch to near zero is not the question). Thresholds and measurements:
docs/probes/overfit.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nndiag.batches import batch_size, split_batch, take_samples
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.probe import TrainingRun, Outcome, Probe, ProbeContext, threshold

_REGRESSION_LOSSES = (torch.nn.MSELoss, torch.nn.L1Loss, torch.nn.SmoothL1Loss, torch.nn.HuberLoss)


@dataclass(frozen=True)
class OverfitConfig:
    """Settings of the overfit probe."""

    samples: int = threshold(32, "nndiag choice between TheDeepChecker's batch of 16 and a usual "
                             "loader batch (prior-art.md)", "samples of the first batch to fit")
    steps: int = threshold(300, "tutorial checklist runs 100 steps (tutorials/002); measured: the "
                               "reference models need 14-87 (docs/probes/overfit.md), so 300 leaves "
                               "a 3x margin", "step budget")
    max_seconds: float = threshold(60.0, "measured: the slowest reference model (seq_classifier, 78-87 "
                                   "steps) needs 1.7-7 s on 1 thread and up to 30 s with torch's 2 "
                                   "threads on a contended 2-core machine (docs/probes/overfit.md)",
                                   "time budget (wall clock); early exit when the criterion is met")
    target_fraction: float = threshold(0.02, "tutorial checklist: loss < 0.1 after 100 steps, i.e. "
                                       "~4% of ln 10 (tutorials/002); nnc/TheDeepChecker ask 1e-4/1e-5 "
                                       "with 2^16/1000 steps (prior-art.md)",
                                       "met when loss < floor + fraction x (initial - floor)")
    min_drop: float = threshold(0.1, "nndiag choice, measured: healthy models fall > 98% of the way, "
                                "non-learning broken ones 0-6% (docs/probes/overfit.md)",
                                "below this fall of the loss (as a fraction of initial - floor) the "
                                "model does not learn at all: fail")
    loss_floor: float | None = threshold(None, "detected (label smoothing, soft BCE targets) or 0",
                                         "the lowest loss reachable; set it for losses with a floor")
    skip_reason: str = threshold("", "the user's own judgement (nndiag_config)",
                                 "skip the probe, stating why (e.g. a GAN with two optimizers, a VAE "
                                 "whose KL term keeps the loss well above zero)")


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


# ---- the probe -------------------------------------------------------------------------------

class OverfitProbe(Probe):
    """Trains a fresh model on one small fixed batch until a stated criterion or the budget."""

    id = "overfit"
    cost = 90  # the order of a check: cheapest first
    hint = ('a model that cannot fit one small batch has a bug in the model, the loss or the training '
            'step: check the learning rate, that zero_grad/backward/step all run, and that targets '
            'match the loss')
    description = "Can the model fit one small fixed batch (loss near zero, every sample right) within a budget?"
    Config = OverfitConfig

    def charts(self, result):
        """The loss per step on the one batch, with the target and the loss floor: nndiag.charts data."""
        from nndiag import chartkit

        return chartkit.charts_or_note(chartkit.loss_curve_chart(result), result)

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        if cfg.skip_reason:
            out.skip(str(cfg.skip_reason))
        bench = ctx.bench
        s = bench.subject
        batch = take_samples(bench.first_batch(), max(1, int(cfg.samples)))
        n = batch_size(batch)
        model = bench.fresh_model()
        opt = bench.make_optimizer(model)
        own_step = s.train_step is None and s.training_step is None and s.loss_fn is not None
        targets = split_batch(batch, s.data_source)[1] if own_step else _targets_or_none(batch)

        scorer: Classification | None = None
        floor, floor_why = (0.0, "")
        if cfg.loss_floor is not None:
            floor, floor_why = float(cfg.loss_floor), "set in the config"
        if not own_step:  # the output is not ours to see during the step: look once, before training
            probe_out = _forward_or_none(bench, model, batch)
            scorer = detect_classification(probe_out, targets, s.loss_fn) if probe_out is not None else None
            if cfg.loss_floor is None and probe_out is not None:
                floor, floor_why = detect_floor(s.loss_fn, probe_out, targets)

        baseline = constant_baseline(s.loss_fn, targets)
        curve: list[float] = []
        accs: list[float] = []
        target = math.nan
        by_loss = True
        met = False
        all_right = None
        start = time.perf_counter()
        for step in range(max(1, int(cfg.steps))):
            if own_step:
                opt.zero_grad(set_to_none=True)
                output = bench.forward(model, batch)
                loss_t = bench.loss_of_output(output, batch)
                bench.backward(loss_t)
                opt.step()
                loss = float(loss_t.detach())
                if step == 0:
                    scorer = detect_classification(output, targets, s.loss_fn)
                    if cfg.loss_floor is None:
                        floor, floor_why = detect_floor(s.loss_fn, output, targets)
                if scorer is not None:
                    right = scorer.correct(output.detach())
                    accs.append(float(right.float().mean()))
                    all_right = bool(right.all())
            else:
                loss = bench.train_one_step(model, opt, batch)
            curve.append(loss)
            if not math.isfinite(loss):
                # Every training nndiag runs is watched: the nan probe locates the producer.
                ctx.observe_non_finite(TrainingRun(
                    f"the overfit run (one batch of {n})", (batch,), step, "loss",
                    f"the loss is {loss}"))
                break
            if step == 0:
                # A loss that starts at or below its floor (a log-likelihood that can go negative,
                # NLLLoss on raw outputs) gives "close to zero" no meaning: only the classification
                # criterion can then be used, and without one there is nothing to decide.
                # The scale is the larger of the initial loss and the loss of the best constant
                # prediction, so that weights that already fit the batch (a trained model: loss 1e-6
                # where predicting the mean costs 0.5) count as fitted, not as "must fall 98% more".
                scale = max(loss, baseline[0]) if baseline is not None else loss
                by_loss = scale > floor
                target = floor + cfg.target_fraction * (scale - floor) if by_loss else math.nan
                if not by_loss and scorer is None:
                    break
            if not by_loss or loss < target:
                if scorer is not None and not own_step:
                    all_right, acc = _score_now(bench, model, batch, scorer)
                    accs.append(acc)
                if scorer is None or all_right:
                    met = True
                    break
            if time.perf_counter() - start > cfg.max_seconds:
                break
        seconds = time.perf_counter() - start
        if scorer is not None and not own_step and not met and curve and math.isfinite(curve[-1]):
            all_right, acc = _score_now(bench, model, batch, scorer)
            accs.append(acc)

        if not by_loss and scorer is None:
            out.data["loss_curve"] = curve
            out.metric("initial_loss", curve[0])
            out.metric("loss_floor", floor)
            out.warn(f"Cannot judge: the loss starts at {curve[0]:.4g}, at or below {floor:.3g}, the lowest "
                     "value it is taken to reach, so 'close to its floor' has no meaning and the output is "
                     "not classification to score instead. If the loss can go negative by design (a "
                     "log-likelihood), set overfit.loss_floor to its lowest value; if it should not, "
                     "check the loss (e.g. NLLLoss needs log_softmax outputs).",
                     value=curve[0], limit=floor, metric="initial_loss")
            out.summary = f"cannot judge: the loss starts at {curve[0]:.4g}, not above its floor {floor:.3g}"
            return
        self._report(out, curve, accs, scorer, baseline if scorer is None else None, target, floor,
                     floor_why, met, seconds, n)

    def _report(self, out: Outcome, curve: list[float], accs: list[float], scorer: Classification | None,
                baseline: tuple[float, str] | None, target: float, floor: float, floor_why: str,
                met: bool, seconds: float, n: int) -> None:
        cfg = self.config
        initial, final = curve[0], curve[-1]
        finite = [c for c in curve if math.isfinite(c)]
        best = min(finite) if finite else math.nan
        steps = len(curve)
        out.data["loss_curve"] = curve
        if accs:
            out.data["accuracy_curve"] = accs
        out.metric("initial_loss", initial)
        out.metric("final_loss", final)
        out.metric("best_loss", best)
        out.metric("target", target)
        out.metric("loss_floor", floor)
        out.metric("steps", steps)
        out.metric("seconds", seconds)
        out.metric("max_steps", int(cfg.steps))  # the budget; "steps" is what ran
        out.metric("max_seconds", float(cfg.max_seconds))
        out.metric("samples", n)
        if scorer is not None:
            out.metric("accuracy", accs[-1] if accs else None)
            out.metric("chance_accuracy", scorer.chance)
        budget = (f"{steps} of {int(cfg.steps)} steps, {seconds:.1f} of {cfg.max_seconds:g} s, "
                  f"on {n} samples")
        floor_note = f" (loss floor {floor:.3g}: {floor_why})" if floor else ""
        need = f"needed < {target:.3g}{floor_note}" if math.isfinite(target) else (
            f"the loss started at or below its floor {floor:.3g}, so only the accuracy counts")
        what = f"loss {initial:.3g} -> {final:.3g}; {need}"

        if scorer is not None and scorer.chance >= 1.0:
            out.warn(f"Every target in the {n}-sample batch is the same class, so fitting it proves "
                     "little: a constant output does it. Check the labels (see the data probe); a "
                     "common cause is labels scaled or cast by mistake.", where="targets",
                     value=scorer.chance, metric="chance_accuracy")
        if not math.isfinite(final):
            out.fail(f"The loss became {final} at step {steps} while fitting one batch of {n} samples "
                     f"(it started at {initial:.3g}). The model cannot learn like this: the learning rate "
                     "is likely far too high (see the lr-range probe), or an operation overflows (see "
                     "the nan probe).", value=final, limit=target, metric="final_loss")
            out.summary = f"loss became {final} at step {steps} ({budget})"
            return
        if met:
            right = ", every sample classified right" if scorer is not None else ""
            out.summary = f"fitted one batch: {what}{right}; {budget}"
            return

        # Where training ended up (median of the last 10 steps), not its best moment: a model that
        # blows up and collapses to a constant output may pass through a low loss on the way.
        tail = sorted(finite[-10:])
        end = tail[len(tail) // 2]
        drop = (initial - end) / (initial - floor) if initial - floor > 0 else None
        out.metric("end_loss", end)
        out.metric("drop", drop)
        acc = sum(accs[-10:]) / len(accs[-10:]) if accs else None
        acc_gain = None
        if scorer is not None and acc is not None and scorer.chance < 1.0:
            acc_gain = (acc - scorer.chance) / (1.0 - scorer.chance)
            out.metric("accuracy_gain", acc_gain)
        base_gain = None
        if baseline is not None and baseline[0] - floor > 0:
            base_gain = (baseline[0] - end) / (baseline[0] - floor)
            out.metric("constant_baseline_loss", baseline[0])
            out.metric("baseline_gain", base_gain)
        peak = max(finite)
        spike = ""
        if peak > 10 * abs(initial) and peak > 0:
            spike = (f"The loss spiked to {peak:.3g} at step {curve.index(peak) + 1} on the way: the learning "
                     "rate is likely too high for this model (see lr-range). ")
        causes = ("Likely causes: a learning rate far too small or far too large for the optimizer (see "
                  "lr-range), inputs not scaled (raw pixels 0-255), saturated sigmoid/tanh units or a "
                  "sigmoid or softmax where the loss expects logits, dead ReLUs, a detached tensor or "
                  "frozen layers cutting the loss off the parameters, or a loss that does not fit the task.")
        lim = cfg.min_drop
        if drop is not None and drop < lim:
            out.fail(f"The model does not learn one fixed batch of {n} samples: the loss went "
                     f"{initial:.4g} -> {end:.4g} (median of the last steps), {drop:.1%} of the way to "
                     f"{floor:.3g} (needed at least {lim:.0%}) in {budget}. {spike}{causes}", value=drop, limit=lim, metric="drop")
        elif acc_gain is not None and acc_gain < lim:
            out.fail(f"The model does not learn one fixed batch of {n} samples: after {budget} its "
                     f"batch accuracy is {acc:.0%}, {'no' if acc <= scorer.chance else 'hardly'} better than always predicting the most common "
                     f"class ({scorer.chance:.0%}; it closed {acc_gain:.1%} of the gap to 100%, needed "
                     f"{lim:.0%}), while the loss went {initial:.3g} -> {end:.3g}. {spike}{causes}",
                     value=acc_gain, limit=lim, metric="accuracy_gain")
        elif base_gain is not None and base_gain < lim:
            out.fail(f"The model does not learn one fixed batch of {n} samples: its loss ended at {end:.4g}, "
                     f"hardly below {baseline[0]:.4g}, the loss of {baseline[1]} (it closed "
                     f"{base_gain:.1%} of that gap, needed {lim:.0%}), so it learned nothing about the "
                     f"inputs in {budget}. A network that collapses to a constant output often has every "
                     f"ReLU dead after a too-large update. {spike}{causes}",
                     value=base_gain, limit=lim, metric="baseline_gain")
        else:
            acc_note = f"; batch accuracy {acc:.0%}" if acc is not None else ""
            ran_out = ("the time budget ran out" if steps < int(cfg.steps) else "the step budget ran out")
            out.warn(f"The model learns but did not fit one batch of {n} samples within the budget "
                     f"({ran_out}): {what}{acc_note} after {budget}. Training may just be slow (a small "
                     "learning rate, dropout or heavy regularisation, a hard batch, a busy machine); raise "
                     "overfit.steps or overfit.max_seconds to see if it gets there. If the loss has a "
                     "floor above zero (a KL term, label smoothing), set overfit.loss_floor or "
                     "overfit.skip_reason.", value=best, limit=target, metric="best_loss")
        out.summary = f"not fitted: {what}; {budget}"


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


def _score_now(bench: Any, model: torch.nn.Module, batch: Any, scorer: Classification) -> tuple[bool, float]:
    """(all right, accuracy) of the model on the batch now, by one forward without a gradient."""
    with torch.no_grad():
        right = scorer.correct(bench.forward(model, batch).detach())
    return bool(right.all()), float(right.float().mean())


@hookimpl
def nndiag_register_probes():
    """Register the overfit probe."""
    return [OverfitProbe]
