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
* a gradient above ``exploding_fail_max_abs``: fail; a merely large gradient (a summed loss,
  unscaled inputs) is a pass fact, since Adam-type optimizers normalise it;
* the first-to-last weight gradient-norm ratio below ``vanishing_ratio``: warn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.report import Status
from nndiag.training_trace import ParamStats, shared_training_trace

_SRC = "measured on the zoo: docs/probes/gradients.md"


@dataclass(frozen=True)
class GradientsConfig:
    """Settings of the gradients probe."""

    steps: int = threshold(5, "TheDeepChecker watches gradients over 5 steps (prior-art.md)",
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


@dataclass
class ParamSummary:
    """One parameter's statistics over the examined steps."""

    name: str
    connected: bool
    grad_norm: float  # mean over steps
    mean_abs_grad: float  # mean over steps
    max_abs_grad: float  # max over steps
    update_ratio: float | None  # lr * |g| / |w|, mean over steps (issue #2's definition)
    step_update_ratio: float  # |w_after - w_before| / |w|, what the optimizer actually did
    max_step_update_ratio: float = 0.0  # the largest of those over the steps
    changed: bool = False  # the weights moved in some step
    lr: float | None = None

    def as_row(self) -> dict:
        """The row of out.data["layers"] (read by the HTML report)."""
        return {"param": self.name, "connected": self.connected, "grad_norm": self.grad_norm,
                "mean_abs_grad": self.mean_abs_grad, "max_abs_grad": self.max_abs_grad,
                "update_ratio": self.update_ratio, "step_update_ratio": self.step_update_ratio,
                "max_step_update_ratio": self.max_step_update_ratio, "changed": self.changed}


def summarise(name: str, steps: list[ParamStats]) -> ParamSummary:
    """Aggregate one parameter's per-step statistics."""
    connected = any(s.has_grad for s in steps)
    with_grad = [s for s in steps if s.has_grad] or steps
    n = len(with_grad)
    ratios = [s.lr * s.grad_norm / s.weight_norm for s in with_grad
              if s.lr is not None and s.weight_norm > 0]
    step_ratios = [s.update_norm / s.weight_norm for s in with_grad if s.weight_norm > 0]
    return ParamSummary(
        name, connected,
        grad_norm=sum(s.grad_norm for s in with_grad) / n,
        mean_abs_grad=sum(s.mean_abs_grad for s in with_grad) / n,
        max_abs_grad=max(s.max_abs_grad for s in with_grad),
        update_ratio=sum(ratios) / len(ratios) if ratios else None,
        step_update_ratio=sum(step_ratios) / len(step_ratios) if step_ratios else 0.0,
        max_step_update_ratio=max(step_ratios, default=0.0),
        changed=any(s.update_norm > 0 for s in steps),
        lr=next((s.lr for s in steps if s.lr is not None), None),
    )


def graph_cut(params: list[ParamSummary]) -> str:
    """Where the graph is cut: "fc1 gets no gradient, fc2 does: the graph is cut between them",
    for the first module (in the model's order) without gradients followed by one with them."""
    modules: list[list] = []  # [module path, any parameter connected]
    for p in params:
        path = p.name.rsplit(".", 1)[0] if "." in p.name else "<model>"
        if modules and modules[-1][0] == path:
            modules[-1][1] = modules[-1][1] or p.connected
        else:
            modules.append([path, p.connected])
    for (before, got_before), (after, got_after) in zip(modules, modules[1:]):
        if not got_before and got_after:
            return f"{before} gets no gradient, {after} does: the graph is cut between them"
    return ""


def _names(names: list[str], limit: int = 6) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


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
        lead = self._disconnected(out, params, trace.own_step)
        tiny = [p for p in connected if p.max_abs_grad < cfg.vanishing_max_abs]
        ndim = trace.param_ndims
        weights = [p for p in connected if ndim.get(p.name, 2) >= 2]
        top = max((p.max_abs_grad for p in weights), default=0.0)
        out.metric("largest_weight_max_abs_grad", top)
        self._tiny_non_weights(ctx, out, [p for p in tiny if ndim.get(p.name, 2) < 2])
        self._zero_and_vanishing(out, [p for p in tiny if ndim.get(p.name, 2) >= 2], top,
                                 trace.param_numels, [p.name for p in weights])
        self._steps_too_large(out, params, ndim, trace.optimizer)
        self._exploding(out, connected)
        self._ratio(out, weights)
        self._symmetry(ctx, out)
        n_bad = sum(f.severity.rank >= Status.WARN.rank for f in out.findings)
        out.summary = lead or (f"{n_connected}/{len(params)} parameters get gradients over "
                               f"{len(usable)} steps; total norm {total:.3g}"
                               + (f"; {n_bad} finding(s)" if n_bad else ""))

    def _disconnected(self, out: Outcome, params: list[ParamSummary], own_step: bool) -> str:
        missing = [p for p in params if not p.connected]
        # With the user's train_step the gradients are read after it returns: a step that clears
        # some gradients on purpose (a GAN clearing the discriminator's before the generator's
        # step) leaves None behind. A parameter that changed was trained: a fact, not a fault.
        trained = [p.name for p in missing if own_step and p.changed]
        if trained:
            out.finding("pass", f"{len(trained)} parameter(s) hold no gradient after your train_step "
                        f"but changed in it, so the step trains them and clears their gradient: "
                        f"{_names(trained)}.", where=trained[0], metric="grad_cleared_by_train_step",
                        value=len(trained))
        missing = [p.name for p in missing if p.name not in trained]
        out.metric("disconnected", len(missing))
        if not missing:
            return ""
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        note = (" (read after your train_step: if it clears gradients at its end, clear them at "
                "its start instead)" if own_step else "")
        cut = graph_cut(params)
        for name in missing:
            out.fail(f"{name} requires grad but gets no gradient: it is not connected to the loss"
                     + (f" ({cut})" if cut else "") + ". Look for a .detach(), a layer defined but "
                     f"never called in forward, or an output that bypasses it{note}.", where=name,
                     metric="grad")
        return f"no gradient reaches {shown}" + (f"; {cut}" if cut else "")

    def _tiny_non_weights(self, ctx, out: Outcome, params: list[ParamSummary]) -> None:
        """Biases and normalisation parameters with a tiny gradient: facts, not failures."""
        if not params:
            return
        redundant = _biases_before_normalisation(ctx)
        before_norm = [p.name for p in params if p.name in redundant]
        others = [p.name for p in params if p.name not in redundant]
        if before_norm:
            out.finding("pass", f"{_names(before_norm)} feed(s) a normalisation layer, which subtracts "
                        "its mean: the gradient is zero by construction, so the bias is redundant "
                        "(bias=False saves the parameters).", where=before_norm[0],
                        value=min(p.max_abs_grad for p in params if p.name in redundant),
                        metric="max_abs_grad")
        if others:
            out.finding("pass", f"{len(others)} bias/normalisation parameter(s) get a gradient below "
                        f"{self.config.vanishing_max_abs:g} (or zero): {_names(others)}. Usual when "
                        "what follows removes them (a BatchNorm reached through 1x1 convolutions, "
                        "attention key biases, which the softmax cancels) or for a zero-initialised "
                        "bias, which trains all the same; the weights are judged instead.",
                        where=others[0], value=min(p.max_abs_grad for p in params if p.name in others),
                        metric="max_abs_grad")

    def _zero_and_vanishing(self, out: Outcome, params: list[ParamSummary], top: float,
                            numels: dict | None = None, weights: list[str] | None = None) -> None:
        limit, rel = self.config.vanishing_max_abs, self.config.vanishing_relative
        numels = numels or {}
        total = sum(numels.get(n, 0) for n in (weights or [])) or 1
        dead = [p for p in params if p.max_abs_grad == 0.0]
        share = sum(numels.get(p.name, 0) for p in dead) / total if numels else 1.0
        out.metric("dead_weight_share", share if dead else 0.0)
        if dead and share < self.config.dead_share:
            # a small dead side path (a squeeze-excitation block whose few ReLUs are all off at
            # initialisation: its gate is a constant) while the rest of the network trains
            names = [p.name for p in dead]
            out.finding("pass", f"{len(dead)} small weight tensor(s), {share:.1%} of the network's weights, "
                        f"get an exactly zero gradient at every step: {_names(names)}. A dead side path "
                        "(e.g. a squeeze-excitation block whose few ReLUs are all inactive, leaving a "
                        "constant gate); the rest of the network trains.", where=names[0], value=share,
                        limit=self.config.dead_share, metric="dead_weight_share")
            params = [p for p in params if p.max_abs_grad != 0.0]
        for p in params:
            if p.max_abs_grad == 0.0:
                out.fail(f"The gradient of {p.name} is exactly zero at every step: nothing flows "
                         "back to it. Common causes: dead ReLUs in front of it, a zero-initialised "
                         "layer feeding a product, or an argmax/round in the path.",
                         where=p.name, value=0.0, limit=limit, metric="max_abs_grad")
            elif top > 0 and p.max_abs_grad < rel * top:
                out.fail(f"The gradient of {p.name} vanishes: max |g| = {p.max_abs_grad:.2g} < "
                         f"{limit:g} at every step, {p.max_abs_grad / top:.1g} of the largest weight "
                         f"gradient in the network ({top:.2g}). Use ReLU-family activations, a "
                         "normalisation layer or residual connections, or a better initialisation.",
                         where=p.name, value=p.max_abs_grad, limit=limit, metric="max_abs_grad")
            else:
                out.finding("pass", f"{p.name}: max |g| = {p.max_abs_grad:.2g}, small, but so is "
                            f"every gradient of the network (largest {top:.2g}): a loss on a small "
                            "scale, not a vanishing path.", where=p.name, value=p.max_abs_grad,
                            metric="max_abs_grad")

    def _steps_too_large(self, out: Outcome, params: list[ParamSummary], ndim: dict,
                         optimizer: str = "") -> None:
        """The optimizer's step against the weight's size, over the network's weights (median): a
        learning rate too high moves every layer by a large share of itself, while a single
        zero-initialised or 1e-6-scaled tensor (a ViT head, a class token, a layer scale) moves by
        "1000x its norm" in a healthy net and says nothing. LBFGS's step is a whole line search:
        not judged."""
        cfg = self.config
        weights = [p for p in params if p.connected and ndim.get(p.name, 2) >= 2
                   and p.max_step_update_ratio > 0]
        if not weights:
            return
        ratios = sorted(p.max_step_update_ratio for p in weights)
        r = ratios[len(ratios) // 2]
        worst = max(weights, key=lambda p: p.max_step_update_ratio)
        out.metric("median_update_ratio", r)
        out.metric("max_update_ratio", worst.max_step_update_ratio)
        if optimizer == "LBFGS":
            return
        lr = f"lr {worst.lr:g}" if worst.lr is not None else "the learning rate"
        msg = (f"One optimizer step moves the weights by {r:.3g} times their own norm (median over "
               f"{len(weights)} weight tensors of |w_after - w_before| / |w|; {worst.name} "
               f"{worst.max_step_update_ratio:.3g} with max |g| {worst.max_abs_grad:.3g}, {lr}): steps "
               "that large throw the weights around instead of descending. The learning rate is too "
               "high for this model and optimizer: lower it (see the lr-range probe); unscaled inputs "
               "or a summed loss make |g|, and with SGD the step, large too.")
        out.graded(msg, value=r, warn_limit=cfg.update_warn, fail_limit=cfg.update_fail,
                   where=worst.name, metric="median_update_ratio")

    def _exploding(self, out: Outcome, params: list[ParamSummary]) -> None:
        warn_at, fail_at = self.config.exploding_max_abs, self.config.exploding_fail_max_abs
        big = [p for p in params if p.max_abs_grad > warn_at]
        for p in big:
            if p.max_abs_grad > fail_at:
                out.fail(f"The gradient of {p.name} explodes: max |g| = {p.max_abs_grad:.3g} > "
                         f"{fail_at:g}. Scale the inputs and targets, lower the learning rate, or "
                         "clip gradients.", where=p.name, value=p.max_abs_grad, limit=fail_at,
                         metric="max_abs_grad")
        large = [p for p in big if p.max_abs_grad <= fail_at]
        if large:
            worst = max(large, key=lambda p: p.max_abs_grad)
            out.finding("pass", f"{len(large)} parameter(s) have a large gradient (max |g| up to "
                        f"{worst.max_abs_grad:.3g} in {worst.name}, above {warn_at:g}): a summed "
                        "loss or inputs on a large scale do this by design; the step sizes, not "
                        "|g|, say whether it is a problem.", where=worst.name,
                        value=worst.max_abs_grad, limit=warn_at, metric="large_grad")

    def _symmetry(self, ctx: ProbeContext, out: Outcome) -> None:
        tied = identical_units(ctx)
        out.metric("identical_unit_layers", len(tied))
        for name, units in tied:
            out.fail(f"All {units} units of {name} start identical and get identical gradients, so "
                     "every step changes them alike and they stay copies of one unit: the layer works "
                     "as if it had one unit (broken symmetry). Initialise the weights randomly "
                     "(PyTorch's default, or nn.init.kaiming_uniform_/xavier_uniform_), not to a "
                     "constant.", where=name, value=units, metric="identical_units")

    def _ratio(self, out: Outcome, params: list[ParamSummary]) -> None:
        # AUTOTRAINER compares the first and last layers' weights; biases are left out because a
        # small bias gradient says little about the flow through the layer.
        # Weight matrices only (``weight``, and ``weight_ih_l0``/``weight_hh_l0`` of recurrent layers).
        weights = [p for p in params if p.name.rsplit(".", 1)[-1].startswith("weight")
                   and p.grad_norm > 0]
        if len(weights) < 2:
            return
        first, last = weights[0], weights[-1]
        ratio = first.grad_norm / last.grad_norm
        out.metric("first_last_grad_ratio", ratio)
        if ratio < self.config.vanishing_ratio:
            out.warn(f"Gradients shrink towards the input: |g| of {first.name} is {ratio:.2g} times "
                     f"that of {last.name} (limit {self.config.vanishing_ratio:g}). Deep sigmoid/tanh "
                     "stacks do this; ReLU, normalisation or residual connections help.",
                     where=first.name, value=ratio, limit=self.config.vanishing_ratio,
                     metric="first_last_grad_ratio")


_NORMALISATIONS = {"batch_norm", "layer_norm", "group_norm", "instance_norm"}


def identical_units(ctx: ProbeContext) -> list[tuple[str, int]]:
    """Weights whose units (rows: output features, conv filters) are all identical at
    initialisation *and* get identical gradients, so no step can ever make them differ: (name,
    number of units). A zero-initialised head has identical rows too, but its rows' gradients
    differ (one per class), which breaks the tie: not reported. One fresh model; a forward and
    backward only when some weight has identical rows."""
    import torch

    from nndiag.errors import SubjectError

    def compute() -> list[tuple[str, int]]:
        model = ctx.bench.fresh_model()
        same = [(n, p) for n, p in model.named_parameters()
                if p.requires_grad and p.dim() >= 2 and p.shape[0] > 1 and bool((p == p[:1]).all())]
        if not same:
            return []
        try:
            loss = ctx.bench.compute_loss(model, ctx.bench.first_batch())
            ctx.bench.backward(loss)
        except SubjectError:
            return []  # no loss to differentiate (a train_step only): not decided
        out = []
        for n, p in same:
            g = p.grad
            if g is None:
                continue
            scale = float(g.abs().max())
            if scale == 0 or torch.allclose(g, g[:1].expand_as(g), rtol=1e-4, atol=1e-6 * scale):
                out.append((n, int(p.shape[0])))
        return out

    return ctx.shared("identical_units", compute)


def _biases_before_normalisation(ctx: ProbeContext) -> set[str]:
    """Names of biases of modules whose output goes straight into a normalisation op.

    ``Conv2d(bias=True)`` followed by ``BatchNorm2d`` is common in healthy nets: the normalisation
    subtracts the per-channel mean, so the bias gets an exactly-zero gradient (up to rounding).
    That is redundancy, not a vanishing gradient. Found by one traced forward on the first batch.
    """
    def compute() -> set[str]:
        import torch

        from nndiag.torchhooks import CallTracer

        from nndiag.errors import SubjectError

        model = ctx.bench.fresh_model()
        producers: set[str] = set()
        tracer = CallTracer(model, ops=_NORMALISATIONS,
                            on_call=lambda info: info.producer is not None and producers.add(info.producer))
        try:
            with tracer.active(), torch.no_grad():
                ctx.bench.compute_loss(model, ctx.bench.first_batch())
        except SubjectError:
            return set()  # cannot trace this batch format: no exemption, the verdicts stand
        names = dict(model.named_parameters())
        return {f"{p}.bias" if p else "bias" for p in producers} & set(names)

    return ctx.shared("biases_before_normalisation", compute)


@hookimpl
def nndiag_register_probes():
    """Register the gradients probe."""
    return [GradientsProbe]
