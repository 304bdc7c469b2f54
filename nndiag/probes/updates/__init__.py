"""``updates``: does one optimizer step change every trainable parameter, does the optimizer hold
every trainable parameter, and (with the user's own ``train_step``) are gradients cleared between
steps.

How it decides (details and measurements in docs/probes/updates.md):

* **Change.** One step on the first probe batch (the user's ``train_step`` when given, else
  nndiag's ``zero_grad``/loss/``backward``/``step``); each parameter is compared bit for bit with
  its value before the step (``torch.equal``, as torchtest's ``assert_vars_change``). The whole
  tensor is compared, so an embedding whose unused rows stay put still counts as changed. An
  unchanged trainable parameter is explained by its gradient: none (cut off from the loss: fail),
  exactly zero on this batch (warn: it may move on other batches), non-zero (fail: the step did
  not apply it, e.g. ``optimizer.step()`` missing or ``lr=0``; warn when the step is below float
  resolution). A parameter whose gradient is exactly zero but that moved anyway moved only through
  weight decay or momentum: a warn, because "changed" then says nothing about learning.
* **Membership**, by identity over ``optimizer.param_groups`` (pytest-torch 1.1's check): every
  parameter that requires grad must be held (fail, naming the missing ones); frozen ones held are
  a warn; tensors held that are not the model's parameters are a fail.
* **Cleared gradients** (only with a ``train_step``): call it twice on the same batch (model A),
  and once on a copy of A taken after its first call, with no gradient (model B). With ``g1`` the
  gradient left by A's first call, ``g2`` by its second and ``gB`` by B's, a step that clears
  gradients gives ``g2 = gB`` and one that does not gives ``g2 = g1 + gB``. The coefficient
  ``a`` of ``g1`` in ``g2 - gB`` (least squares) is 0 or 1; a > 0.5 fails. No loss function and no
  assumption about the optimizer is needed: every call is seeded alike, so dropout masks agree.

The package by job: :mod:`.params` (a parameter's gradient state, equality, naming),
:mod:`.membership` (optimizer membership), :mod:`.changes` (did each parameter change, and why
not), :mod:`.step_size` (steps too small to train, half-precision rounding, an optimizer eps that
rounds to 0 in float16), :mod:`.modes` (train
mode during training), :mod:`.zero_grad` (gradients cleared between train_step calls).
"""

from __future__ import annotations

from dataclasses import dataclass

from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.probes.updates.changes import LATER_STEPS, check_changes, diagnostic_grads
from nndiag.probes.updates.membership import check_membership
from nndiag.probes.updates.modes import check_modes
from nndiag.probes.updates.params import grad_state
from nndiag.probes.updates.step_size import check_half_eps
from nndiag.probes.updates.zero_grad import accumulation, check_zero_grad
from nndiag.seeding import fork_seeded

__all__ = ["LATER_STEPS", "UpdatesConfig", "UpdatesProbe", "accumulation", "nndiag_register_probes"]


@dataclass(frozen=True)
class UpdatesConfig:
    """Settings of the updates probe."""

    check_zero_grad: bool = threshold(
        True, "own choice (a train_step that never calls zero_grad())",
        "with a train_step, check that gradients are cleared between steps; switch off for a "
        "train_step that accumulates gradients over calls on purpose")
    accumulation_limit: float = threshold(
        0.5, "midpoint of the two exact answers: a = 0 (cleared) and a = 1 (accumulated)",
        "fail when the fraction a of the previous step's gradient still in the next one exceeds this")
    residual_tolerance: float = threshold(
        0.01, "own measurement (docs/probes/updates.md): residuals are < 1e-6 on CPU for seeded "
        "steps; 1e-2 leaves room for GPU non-determinism",
        "relative residual above which the second step's gradient is neither cleared nor accumulated "
        "and the check says it cannot decide (warn)")
    zero_gradient_batches: int = threshold(
        4, "own choice: the probe batches other probes pull anyway (dead-neurons looks at 256 "
        "samples = 4 batches of 64)", "batches on which an all-zero gradient must repeat before "
        "a parameter is reported as never changing")
    tiny_step_fail: float = threshold(1e-6, "measured on the zoo: docs/probes/updates.md",
                                      "fail when one step moves the weights by less than this share "
                                      "of their norm (median over weight tensors)")
    max_names: int = threshold(8, "readability (names shown per finding)",
                               "how many parameter names a finding lists before '...'")


class UpdatesProbe(Probe):
    """One optimizer step: every trainable parameter changes, the optimizer holds them all, and
    gradients are cleared between the user's train_step calls."""

    id = "updates"
    cost = 50  # the order of a check: cheapest first
    hint = ('a parameter that does not change is missing from the optimizer, frozen, or gets no '
            'gradient; gradients that grow between steps mean zero_grad() is missing')
    description = "Does one step change every trainable parameter; optimizer holds them all; zero_grad between steps?"
    Config = UpdatesConfig

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        bench = ctx.bench
        model = bench.fresh_model()
        named = list(model.named_parameters())
        trainable = [(n, p) for n, p in named if p.requires_grad]
        out.metric("parameters", len(named))
        out.metric("trainable", len(trainable))
        if not trainable:
            what = "no parameters at all" if not named else f"all {len(named)} of its parameter tensors frozen"
            out.fail(f"The model has {what} (requires_grad=False), so an optimizer step can change "
                     "nothing and training would leave the model as it is. Unfreeze the layers you "
                     "mean to train (p.requires_grad_(True)), or register layers as attributes "
                     "(nn.ModuleList, not a plain list).", where="<model>", value=0, limit=1,
                     metric="trainable")
            out.summary = "no trainable parameter: a step can change nothing"
            return
        opt = bench.make_optimizer(model)
        batch = bench.first_batch()
        before = {n: p.detach().clone() for n, p in named}
        modes = {n: m.training for n, m in model.named_modules()}
        with fork_seeded(ctx.seed):
            loss = bench.train_one_step(model, opt, batch)
        out.metric("loss", loss)
        check_modes(self.config, model, modes, out)
        after = list(model.named_parameters())  # a forward that creates layers adds parameters
        grads = {n: grad_state(p) for n, p in after}
        if bench.has_own_step and all(grads[n] == "none" for n, p in after if p.requires_grad):
            grads.update(diagnostic_grads(ctx))  # train_step cleared them on its way out
        held, via_user = check_membership(self.config, ctx, model, opt, after, out)
        check_changes(self.config, ctx, opt, before, after, grads, held, via_user, out)
        check_half_eps(self.config, out, opt, after)
        if bench.has_own_step:
            if self.config.check_zero_grad:
                check_zero_grad(self.config, ctx, batch, out)
            else:
                out.data["zero_grad_check"] = "switched off (check_zero_grad=False)"
        else:
            out.data["zero_grad_check"] = "not needed: nndiag's own step calls zero_grad()"
        self._summarise(out)

    def _summarise(self, out: Outcome) -> None:
        m = out.metrics
        bits = [f"{m.get('changed', 0)} of {m.get('trainable', 0)} trainable parameter tensors changed "
                "after one step"]
        if m.get("half_eps"):
            bits.append(f"{m['half_eps']} float16 tensor(s) under an eps that rounds to 0")
        if m.get("missing_from_optimizer"):
            bits.append(f"{m['missing_from_optimizer']} missing from the optimizer")
        check = out.data.get("zero_grad_check")
        if isinstance(check, dict) and check.get("decided") is False:
            bits.append("could not tell whether train_step clears gradients")
        elif "accumulated_fraction" in m:
            a = m["accumulated_fraction"]
            bits.append("gradients accumulate between train_step calls" if
                        a is not None and a > self.config.accumulation_limit
                        else "train_step clears gradients")
        out.summary = "; ".join(bits)


@hookimpl
def nndiag_register_probes():
    """Register the updates probe."""
    return [UpdatesProbe]
