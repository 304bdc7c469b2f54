"""The same architecture at PyTorch's default initialisation, as a baseline for the user's gradient
size: a large gradient the default initialisation gets too comes from the data or the loss (raw
counts, a summed ELBO) and is a fact; one hundreds of times larger than the default's comes from
the model's own initialisation (a recurrent matrix with gain 2: the hidden state and the gradient
grow like 2^T over T steps) and explodes whatever the data's scale.

One forward and backward of each model on the first batch, under the run seed (the same dropout
masks for both); computed once per run and shared. Only PyTorch's own modules are reset (their
``reset_parameters`` is the library default); a user module's or a third-party library's own init
stays as it is in the baseline, which can only make the two closer (never a false alarm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nndiag.probe import Outcome, ProbeContext

if TYPE_CHECKING:
    from nndiag.probes.gradients import GradientsConfig
    from nndiag.probes.gradients.summary import ParamSummary


@dataclass(frozen=True)
class InitBaseline:
    """Max |g| of one step at the user's initialisation and at PyTorch's default one."""

    user: float
    default: float
    modules_reset: int

    @property
    def ratio(self) -> float:
        """user / default (inf when the default's gradient is exactly zero)."""
        return self.user / self.default if self.default > 0 else math.inf


def _max_abs_grad(ctx: ProbeContext, model) -> float | None:
    from nndiag.errors import SubjectError
    from nndiag.seeding import fork_seeded

    with fork_seeded(ctx.seed):
        try:
            loss = ctx.bench.compute_loss(model, ctx.bench.first_batch())
            ctx.bench.backward(loss)
        except SubjectError:
            return None  # no loss of ours to differentiate (a train_step only): not decided
    grads = [float(p.grad.detach().abs().max()) for p in model.parameters()
             if p.requires_grad and p.grad is not None and p.grad.numel()]
    grads = [g for g in grads if math.isfinite(g)]
    return max(grads) if grads else None


def reset_to_defaults(model) -> int:
    """Re-initialise every PyTorch module of ``model`` with its own ``reset_parameters`` (the
    library's default init), in place; returns how many were reset. User-defined and third-party
    modules are left alone: their ``reset_parameters`` may be the very init under test."""
    n = 0
    for module in model.modules():
        fn = getattr(module, "reset_parameters", None)
        if callable(fn) and type(module).__module__.startswith("torch.nn."):
            fn()
            n += 1
    return n


def init_baseline(ctx: ProbeContext) -> InitBaseline | None:
    """The user's and the default initialisation's max |g| on the first batch, or None when it
    cannot be measured (trained weights, no loss of ours, nothing to reset)."""
    if ctx.subject.trained:
        return None  # trained weights are not an initialisation

    def compute() -> InitBaseline | None:
        import torch

        from nndiag.seeding import fork_seeded

        user = _max_abs_grad(ctx, ctx.bench.fresh_model())
        if user is None:
            return None
        model = ctx.bench.fresh_model()
        with fork_seeded(ctx.seed), torch.no_grad():
            reset = reset_to_defaults(model)
        default = _max_abs_grad(ctx, model) if reset else None
        return None if default is None else InitBaseline(user, default, reset)

    return ctx.shared("gradients_init_baseline", compute)


def check_exploding(cfg: GradientsConfig, ctx: ProbeContext, out: Outcome,
                    params: list[ParamSummary]) -> None:
    """Gradients above ``exploding_fail_max_abs`` fail; large ones (above ``exploding_max_abs``)
    fail when the model's own initialisation makes them ``init_explode_ratio`` times what PyTorch's
    default gets on the same batch, and are a pass fact otherwise."""
    warn_at, fail_at = cfg.exploding_max_abs, cfg.exploding_fail_max_abs
    big = [p for p in params if p.max_abs_grad > warn_at]
    for p in big:
        if p.max_abs_grad > fail_at:
            out.fail(f"The gradient of {p.name} explodes: max |g| = {p.max_abs_grad:.3g} > "
                     f"{fail_at:g}. Scale the inputs and targets, lower the learning rate, or "
                     "clip gradients.", where=p.name, value=p.max_abs_grad, limit=fail_at,
                     metric="max_abs_grad")
    large = [p for p in big if p.max_abs_grad <= fail_at]
    if not large:
        return
    worst = max(large, key=lambda p: p.max_abs_grad)
    # with a gradient past the absolute limit the fail is already said: no baseline needed
    base = init_baseline(ctx) if len(large) == len(big) else None
    if base is not None:
        out.metric("init_grad_ratio", base.ratio)
    if base is not None and base.ratio >= cfg.init_explode_ratio:
        out.fail(f"The gradient explodes from the model's own initialisation: at the first step max "
                 f"|g| = {base.user:.3g}, {base.ratio:.3g} times what the same architecture gets at "
                 f"PyTorch's default initialisation on the same batch ({base.default:.3g}; "
                 f"{base.modules_reset} module(s) re-initialised), so the data's scale does not "
                 "explain it. A recurrent or deep stack whose weights are scaled above 1 (an "
                 "orthogonal or identity init with gain > 1, a large std) grows the signal and the "
                 "gradient at every layer or time step. Use the default init (or gain <= 1), or "
                 "clip gradients.", where=worst.name, value=base.ratio,
                 limit=cfg.init_explode_ratio, metric="init_grad_ratio")
        return
    same = (f"; the same architecture at PyTorch's default initialisation gets {base.default:.3g} "
            "on the same batch") if base is not None else ""
    out.finding("pass", f"{len(large)} parameter(s) have a large gradient (max |g| up to "
                f"{worst.max_abs_grad:.3g} in {worst.name}, above {warn_at:g}){same}: a summed "
                "loss or inputs on a large scale do this by design; the step sizes, not "
                "|g|, say whether it is a problem.", where=worst.name,
                value=worst.max_abs_grad, limit=warn_at, metric="large_grad")
