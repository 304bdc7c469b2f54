"""``gradients``: per-parameter gradient statistics over the first training steps, with verdicts.

Reads the shared training pass (nndiag/training_trace.py), so it costs nothing beyond the ``nan``
probe when both run. Verdicts:

* a parameter that requires grad but gets ``None`` is not connected to the loss (a ``.detach()``,
  a layer never called, an output that bypasses it): fail, naming it;
* a gradient that is exactly zero at every step: fail (a dead path, e.g. behind dead ReLUs);
* vanishing: max |g| below ``vanishing_max_abs`` at every step (torchdiag's 1e-7): fail; the
  first-to-last layer gradient-norm ratio below ``vanishing_ratio`` (AUTOTRAINER's 1e-3): warn;
* exploding: max |g| above ``exploding_max_abs`` (torchdiag's 100): warn; above
  ``exploding_fail_max_abs`` (TheDeepChecker's 1e6): fail.

The thresholds disagree by orders of magnitude across tools (prior-art.md); ours are documented
in docs/probes/gradients.md with the measured values of the reference models.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.report import Status
from nndiag.probes.nan import NanConfig
from nndiag.training_trace import ParamStats, shared_training_trace


@dataclass(frozen=True)
class GradientsConfig:
    """Settings of the gradients probe."""

    steps: int = threshold(5, "TheDeepChecker watches gradients over 5 steps (prior-art.md)",
                           "training steps whose gradients are examined")
    vanishing_max_abs: float = threshold(1e-7, "torchdiag: vanishing when max |g| < 1e-7",
                                         "fail when a parameter's max |g| stays below this")
    vanishing_ratio: float = threshold(1e-3, "AUTOTRAINER: first/last layer gradient-norm ratio < 1e-3",
                                       "warn when the first weight's gradient norm is this much "
                                       "smaller than the last's")
    exploding_max_abs: float = threshold(100.0, "torchdiag: exploding when max |g| > 100",
                                         "warn above this max |g|")
    exploding_fail_max_abs: float = threshold(1e6, "TheDeepChecker: exploding when |g| > 1e6",
                                              "fail above this max |g|")


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

    def as_row(self) -> dict:
        """The row of out.data["layers"] (read by the HTML report)."""
        return {"param": self.name, "connected": self.connected, "grad_norm": self.grad_norm,
                "mean_abs_grad": self.mean_abs_grad, "max_abs_grad": self.max_abs_grad,
                "update_ratio": self.update_ratio, "step_update_ratio": self.step_update_ratio}


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
    )


class GradientsProbe(Probe):
    """Per-parameter gradient norms; disconnected, all-zero, vanishing and exploding gradients."""

    id = "gradients"
    cost = 30  # the order of a check: cheapest first
    hint = ('parameters without gradient are cut from the graph (.detach(), .data, torch.no_grad(), '
            '.item()/numpy round-trips) or unused in forward; vanishing/exploding norms point at '
            'init, depth or missing normalisation')
    description = "Per-layer gradient norms; parameters with no or all-zero gradient; vanishing/exploding."
    Config = GradientsConfig

    def charts(self, result):
        """The judged gradient statistic per parameter, with the limits: nndiag.charts data."""
        from nndiag import chartkit

        return chartkit.charts_or_note(chartkit.gradient_chart(result, self.config), result)

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        trace = shared_training_trace(ctx, max(NanConfig().steps, cfg.steps), cfg.steps)
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
        tiny_biases = any(p.name.endswith("bias") and p.max_abs_grad < self.config.vanishing_max_abs
                          for p in connected)
        redundant = _biases_before_normalisation(ctx) if tiny_biases else set()
        for p in connected:
            if p.name in redundant and p.max_abs_grad < self.config.vanishing_max_abs:
                out.finding("pass", f"{p.name} feeds a normalisation layer, which subtracts its "
                            "mean: its gradient is zero by construction, so the bias is redundant "
                            "(bias=False saves the parameters).", where=p.name,
                            value=p.max_abs_grad, metric="max_abs_grad")
        connected = [p for p in connected if p.name not in redundant
                     or p.max_abs_grad >= self.config.vanishing_max_abs]
        self._zero_and_vanishing(out, connected)
        self._exploding(out, connected)
        self._ratio(out, connected)
        n_bad = sum(f.severity.rank >= Status.WARN.rank for f in out.findings)
        out.summary = lead or (f"{n_connected}/{len(params)} parameters get gradients over "
                               f"{len(usable)} steps; total norm {total:.3g}"
                               + (f"; {n_bad} finding(s)" if n_bad else ""))

    def _disconnected(self, out: Outcome, params: list[ParamSummary], own_step: bool) -> str:
        missing = [p.name for p in params if not p.connected]
        if not missing:
            return ""
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        # With the user's train_step the gradients are read after it returns: a zero_grad(set_to_none)
        # at its end would look the same, so say so.
        note = (" (read after your train_step: if it clears gradients at its end, clear them at "
                "its start instead)" if own_step else "")
        for name in missing:
            out.fail(f"{name} requires grad but gets no gradient: it is not connected to the loss. "
                     "Look for a .detach(), a layer defined but never called in forward, or an "
                     f"output that bypasses it{note}.", where=name, metric="grad")
        out.metric("disconnected", len(missing))
        return f"no gradient reaches {shown}"

    def _zero_and_vanishing(self, out: Outcome, params: list[ParamSummary]) -> None:
        limit = self.config.vanishing_max_abs
        for p in params:
            if p.max_abs_grad == 0.0:
                out.fail(f"The gradient of {p.name} is exactly zero at every step: nothing flows "
                         "back to it. Common causes: dead ReLUs in front of it, a zero-initialised "
                         "layer feeding a product, or an argmax/round in the path.",
                         where=p.name, value=0.0, limit=limit, metric="max_abs_grad")
            elif p.max_abs_grad < limit:
                out.fail(f"The gradient of {p.name} vanishes: max |g| = {p.max_abs_grad:.2g} < "
                         f"{limit:g} at every step. Use ReLU-family activations, a normalisation "
                         "layer or residual connections, or a better initialisation.",
                         where=p.name, value=p.max_abs_grad, limit=limit, metric="max_abs_grad")

    def _exploding(self, out: Outcome, params: list[ParamSummary]) -> None:
        warn_at, fail_at = self.config.exploding_max_abs, self.config.exploding_fail_max_abs
        for p in params:
            if p.max_abs_grad > fail_at:
                out.fail(f"The gradient of {p.name} explodes: max |g| = {p.max_abs_grad:.3g} > "
                         f"{fail_at:g}. Scale the inputs and targets, lower the learning rate, or "
                         "clip gradients.", where=p.name, value=p.max_abs_grad, limit=fail_at,
                         metric="max_abs_grad")
            elif p.max_abs_grad > warn_at:
                out.warn(f"The gradient of {p.name} is large: max |g| = {p.max_abs_grad:.3g} > "
                         f"{warn_at:g}. Unscaled inputs or targets, or a summed (not averaged) "
                         "loss, are the usual reasons.", where=p.name, value=p.max_abs_grad,
                         limit=warn_at, metric="max_abs_grad")

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
