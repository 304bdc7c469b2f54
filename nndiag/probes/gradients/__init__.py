"""``gradients``: per-parameter gradient statistics over the first training steps, with verdicts.

Reads the shared training pass (nndiag/training_trace.py), so it costs nothing beyond the ``nan``
probe when both run. Verdicts (measured on the zoo, docs/probes/gradients.md):

* a parameter that requires grad but gets ``None`` is not connected to the loss (a ``.detach()``,
  a layer never called, an output that bypasses it): fail, naming it; with the user's own
  ``train_step`` a parameter that changed was trained (the step cleared its gradient on purpose,
  e.g. a GAN's discriminator before the generator's step): a pass fact;
* a weight (a tensor of 2 or more dimensions) whose gradient is exactly zero at every step: fail
  (a dead path, e.g. behind dead ReLUs);
* vanishing: a weight whose max |g| stays below ``vanishing_max_abs`` at every step *and* below
  ``vanishing_relative`` times the largest weight gradient of the network: fail. A bias or
  normalisation parameter with a tiny or zero gradient is a pass fact: what follows often removes
  it by construction (a BatchNorm, a softmax over attention keys), and a zero-initialised bias
  trains from 1e-10 gradients (its Adam step is lr-sized);
* a step too large: the optimizer's update moved a weight by more than ``update_warn`` (warn) or
  ``update_fail`` (fail) times its own norm, the learning rate named as the cause;
* a gradient above ``exploding_fail_max_abs``: fail; a large gradient (above
  ``exploding_max_abs``) that the same architecture at PyTorch's default initialisation does not
  get (``init_explode_ratio`` times smaller, :mod:`.baseline`) explodes from the model's own
  initialisation: fail; a large gradient the default gets too (a summed loss, unscaled inputs)
  is a pass fact, since Adam-type optimizers normalise it;
* the first-to-last weight gradient-norm ratio below ``vanishing_ratio``: warn.

The package by job: :mod:`.summary` (one parameter's statistics, where the graph is cut),
:mod:`.flow` (does gradient reach every parameter), :mod:`.size` (steps too large),
:mod:`.baseline` (exploding gradients against the default initialisation), :mod:`.structure`
(identical units, biases a normalisation cancels).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.probes.gradients.flow import (check_disconnected, check_ratio, check_symmetry,
                                          check_tiny_non_weights, check_zero_and_vanishing)
from nndiag.probes.gradients.baseline import check_exploding
from nndiag.probes.gradients.size import check_steps_too_large
from nndiag.probes.gradients.structure import biases_before_normalisation, identical_units
from nndiag.probes.gradients.summary import ParamSummary, graph_cut, summarise
from nndiag.report import Status
from nndiag.training_trace import shared_training_trace

__all__ = ["GradientsConfig", "GradientsProbe", "ParamSummary", "biases_before_normalisation",
           "graph_cut", "identical_units", "nndiag_register_probes", "summarise"]

_SRC = "measured on the zoo: docs/probes/gradients.md"


@dataclass(frozen=True)
class GradientsConfig:
    """Settings of the gradients probe."""

    steps: int = threshold(5, "TheDeepChecker watches gradients over 5 steps",
                           "training steps whose gradients are examined")
    vanishing_max_abs: float = threshold(1e-7, "torchdiag: vanishing when max |g| < 1e-7; "
                                         + _SRC, "a weight whose max |g| stays below this (and "
                                         "below vanishing_relative of the largest) vanishes: fail")
    vanishing_relative: float = threshold(1e-4, _SRC, "a vanishing weight's max |g| is also below "
                                          "this fraction of the network's largest weight max |g|")
    vanishing_ratio: float = threshold(1e-3, "AUTOTRAINER: first/last layer gradient-norm ratio < "
                                       "1e-3; " + _SRC, "warn when the first weight's gradient "
                                       "norm is this much smaller than the last's")
    dead_share: float = threshold(0.1, "measured on the zoo: a healthy SE-CNN's dead squeeze path is "
                                  "0.5% of its weights, the dead-ReLU bugs' dead layers most of theirs "
                                  "(docs/probes/gradients.md)", "exactly-zero weight gradients fail when "
                                  "the dead tensors hold at least this share of the weights")
    update_warn: float = threshold(1.0, _SRC, "warn when one step moves a weight by more than this "
                                   "times its norm (|w_after - w_before| / |w|, largest over steps)")
    update_fail: float = threshold(3.0, _SRC, "fail above this update/weight ratio")
    exploding_max_abs: float = threshold(100.0, "torchdiag: large when max |g| > 100 (a pass fact "
                                         "here: Adam normalises it; " + _SRC + ")",
                                         "above this max |g| the size is recorded as a fact")
    exploding_fail_max_abs: float = threshold(1e6, "TheDeepChecker: exploding when |g| > 1e6; "
                                              + _SRC, "fail above this max |g|")
    init_explode_ratio: float = threshold(1e3, _SRC + " (the default-initialisation baseline)",
                                          "above exploding_max_abs, fail when the first step's max "
                                          "|g| is this many times what the same architecture gets "
                                          "at PyTorch's default initialisation")


class GradientsProbe(Probe):
    """Per-parameter gradient norms; disconnected, all-zero, vanishing gradients; too-large steps."""

    id = "gradients"
    cost = 30  # the order of a check: cheapest first
    hint = ('parameters without gradient are cut from the graph (.detach(), .data, torch.no_grad(), '
            '.item()/numpy round-trips) or unused in forward; vanishing/exploding norms point at '
            'init, depth or missing normalisation')
    description = "Per-layer gradient norms; parameters with no or all-zero gradient; vanishing; too-large steps."
    Config = GradientsConfig

    def charts(self, result):
        """The judged gradient statistic per parameter, with the limits: nndiag.charts data."""
        from nndiag import chartkit

        return chartkit.charts_or_note(chartkit.gradient_chart(result, self.config), result)

    def requires(self):
        """The shared training pass, with gradient statistics for each of its ``steps``."""
        from nndiag.passes import TrainingPass

        return [TrainingPass(int(self.config.steps), int(self.config.steps))]

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        trace = shared_training_trace(ctx, cfg.steps, cfg.steps)  # planned once, with nan's
        usable = list(trace.stats)
        if trace.non_finite is not None and trace.non_finite.step < len(usable):
            usable = usable[: trace.non_finite.step]  # that step's gradients are NaN/Inf
        if not usable:
            out.skip("no training step finished with finite values, so gradients cannot be judged "
                     "(the nan probe says where the NaN/Inf comes from)")
        names = trace.param_names
        params = [summarise(n, [s[n] for s in usable]) for n in names]
        out.data["layers"] = [p.as_row() for p in params]
        out.data["limits"] = {"vanishing_limit": cfg.vanishing_max_abs,
                              "exploding_limit": cfg.exploding_max_abs,
                              "exploding_fail_limit": cfg.exploding_fail_max_abs}
        out.metric("steps", len(usable))
        out.metric("parameters", len(params))
        connected = [p for p in params if p.connected]
        total = math.sqrt(sum(p.grad_norm ** 2 for p in connected))
        out.metric("total_grad_norm", total)
        if connected:
            out.metric("max_abs_grad", max(p.max_abs_grad for p in connected))
        n_connected = len(connected)
        lead = check_disconnected(cfg, out, params, trace.own_step)
        tiny = [p for p in connected if p.max_abs_grad < cfg.vanishing_max_abs]
        ndim = trace.param_ndims
        weights = [p for p in connected if ndim.get(p.name, 2) >= 2]
        top = max((p.max_abs_grad for p in weights), default=0.0)
        out.metric("largest_weight_max_abs_grad", top)
        check_tiny_non_weights(cfg, ctx, out, [p for p in tiny if ndim.get(p.name, 2) < 2])
        check_zero_and_vanishing(cfg, out, [p for p in tiny if ndim.get(p.name, 2) >= 2], top,
                                 trace.param_numels, [p.name for p in weights])
        check_steps_too_large(cfg, out, params, ndim, trace.optimizer)
        check_exploding(cfg, ctx, out, connected)
        check_ratio(cfg, out, weights)
        check_symmetry(ctx, out)
        n_bad = sum(f.severity.rank >= Status.WARN.rank for f in out.findings)
        out.summary = lead or (f"{n_connected}/{len(params)} parameters get gradients over "
                               f"{len(usable)} steps; total norm {total:.3g}"
                               + (f"; {n_bad} finding(s)" if n_bad else ""))


@hookimpl
def nndiag_register_probes():
    """Register the gradients probe."""
    return [GradientsProbe]
