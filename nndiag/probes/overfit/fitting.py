"""The fitting run: a fresh model trained with the subject's optimizer on one fixed batch at the
configured (held) learning rate until it is fitted or the budget ends; computed once per run and
settings and shared with lr-range."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

from nndiag.batches import batch_size, iter_tensors, split_batch, take_samples
from nndiag.errors import SubjectError
from nndiag.probe import ProbeContext, TrainingRun
from nndiag.seeding import fork_seeded
from nndiag.probes.overfit.criteria import (Classification, constant_baseline, detect_classification,
                                            detect_floor, floor_is_known)

if TYPE_CHECKING:
    from nndiag.probes.overfit import OverfitConfig


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


def median(values: list[float]) -> float:
    """The middle value of ``values`` (the upper one of an even count): robust to a noisy step."""
    s = sorted(values)
    return s[len(s) // 2]


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
        note = _the_batch(bench.first_batch(), int(cfg.samples))[1]
        batch, targets, n, nndiag_step = fit_inputs(ctx, cfg)
        if n < int(cfg.min_samples):
            return SharedFit(None, n, note)
        model = bench.fresh_model()
        opt = bench.make_optimizer(model)
        return SharedFit(fit_batch(cfg, ctx, model, opt, batch, targets, n, nndiag_step), n, note)

    key = ("overfit_run",) + tuple(str(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
                                   if f.name != "skip_reason")
    return ctx.shared(key, compute)


#: The confirmation run's seed is the run seed plus this (a fixed, documented offset).
CONFIRM_SEED_OFFSET = 7919


def confirm_fit_run(ctx: ProbeContext, cfg: OverfitConfig) -> FitRun | None:
    """The same fit from a second initialisation (run seed + CONFIRM_SEED_OFFSET), on the same
    batch: a fail must not hang on one draw of the weights (or on the rounding noise a different
    thread count gives a chaotic run). None when the batch is too small to fit at all."""
    batch, targets, n, nndiag_step = fit_inputs(ctx, cfg)
    if n < int(cfg.min_samples):
        return None
    seed = ctx.seed + CONFIRM_SEED_OFFSET
    model = ctx.bench.fresh_model(seed=seed)
    opt = ctx.bench.make_optimizer(model)
    with fork_seeded(seed):
        return fit_batch(cfg, ctx, model, opt, batch, targets, n, nndiag_step, observe=False)


def fit_inputs(ctx: ProbeContext, cfg: OverfitConfig) -> tuple[Any, Any, int, bool]:
    """What a fitting run trains on: (the batch, its targets or None, its sample count, whether
    nndiag runs the step itself)."""
    s = ctx.bench.subject
    batch, _ = _the_batch(ctx.bench.first_batch(), int(cfg.samples))
    nndiag_step = s.train_step is None and s.training_step is None and s.loss_fn is not None
    targets = split_batch(batch, s.data_source)[1] if nndiag_step else _targets_or_none(batch)
    n = batch_size(targets) if isinstance(targets, torch.Tensor) and targets.dim() > 0 \
        else batch_size(batch)
    return batch, targets, n, nndiag_step


def fit_batch(cfg: OverfitConfig, ctx: ProbeContext, model, opt, batch, targets, n: int,
              nndiag_step: bool, observe: bool = True) -> FitRun:
    """Train ``model`` with ``opt`` on ``batch`` until it is fitted, the step budget ends, the loss
    turns non-finite (reported to the nan probe) or the time budget cuts the run."""
    bench, s = ctx.bench, ctx.bench.subject
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
            # the one training step (with --autocast fp16 it scales the loss: nndiag.precision)
            result = bench.step(model, opt, batch, keep_output=True)
            output, loss = result.output, result.loss
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
            # Every training nndiag runs is watched: the nan probe locates the producer (it
            # replays at the run seed, so a confirmation run under another seed is not sent).
            if observe:
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
        run.fitted_by = fitted_now(cfg, ctx, model, batch, run, step, loss, gap, right)
        if run.fitted_by:
            break
        if time.perf_counter() - start > cfg.max_seconds:
            run.cut_by_time = step + 1 < run.max_steps
            break
    run.seconds = time.perf_counter() - start
    if run.scorer is not None and not nndiag_step and not run.fitted_by and math.isfinite(run.curve[-1]):
        run.accs.append(score_now(model, lambda m: bench.forward(m, batch), run.scorer)[1])
    return run

def fitted_now(cfg: OverfitConfig, ctx: ProbeContext, model, batch, run: FitRun, step: int, loss: float,
               gap: float | None, right: bool | None) -> str:
    """How the batch counts as fitted after this step ("" while it does not)."""
    bench = ctx.bench
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
            ok, acc = score_now(model, forward, run.scorer)
            run.accs.append(acc)
            if ok:
                return "accuracy"
        ok, _ = score_now(model, forward, run.scorer, eval_mode=True)
        return "accuracy in eval mode" if ok else ""
    if run.floor_known or run.scorer is not None:
        return "loss" if below_target else ""
    # an unknown floor: below 2% of the initial loss is fitted whatever the floor; a loss that
    # fell far and stopped falling has converged to its floor
    if below_target and run.floor == 0.0:
        return "loss"
    w = int(cfg.plateau_window)
    if gap is not None and len(run.curve) >= w + 10 and len(run.curve) % 10 == 0:
        end = median(run.curve[-10:])
        if (run.curve[0] - end) >= cfg.converged_drop * gap and \
                (median(run.curve[-w - 10:-w]) - end) < cfg.plateau_progress * gap:
            return "plateau"
    return ""


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


def score_now(model: torch.nn.Module, forward: Callable[[torch.nn.Module], Any], scorer: Classification,
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
