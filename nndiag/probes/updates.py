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
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch

from nndiag.batches import batch_size
from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.seeding import fork_seeded

_FLOAT32_EPS = float(torch.finfo(torch.float32).eps)
# Steps of the shared training pass whose gradients tell a zero gradient at init from a dead one
# (the gradients probe's default window; the pass is planned once for every probe that reads it).
LATER_STEPS = 5


@dataclass(frozen=True)
class UpdatesConfig:
    """Settings of the updates probe."""

    check_zero_grad: bool = threshold(
        True, "issue 3 (a train_step that never calls zero_grad())",
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


def _names(names: list[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _grad_state(p: torch.Tensor) -> str:
    g = p.grad
    if g is None:
        return "none"
    g = g.detach()
    if not bool(torch.isfinite(g).all()):
        return "nonfinite"
    if not bool(g.ne(0).any()):
        return "zero"
    return "nonzero"


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality, NaN == NaN (a parameter that stays NaN did not change)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        both_nan = torch.isnan(a) & torch.isnan(b)
        return bool(((a == b) | both_nan).all())
    return False


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
        self._modes(model, modes, out)
        after = list(model.named_parameters())  # a forward that creates layers adds parameters
        grads = {n: _grad_state(p) for n, p in after}
        if bench.has_own_step and all(grads[n] == "none" for n, p in after if p.requires_grad):
            grads.update(self._diagnostic_grads(ctx))  # train_step cleared them on its way out
        held, via_user = self._membership(ctx, model, opt, after, out)
        self._changes(ctx, opt, before, after, grads, held, via_user, out)
        if bench.has_own_step:
            if self.config.check_zero_grad:
                self._zero_grad_check(ctx, batch, out)
            else:
                out.data["zero_grad_check"] = "switched off (check_zero_grad=False)"
        else:
            out.data["zero_grad_check"] = "not needed: nndiag's own step calls zero_grad()"
        self._summarise(out)

    # ---- train/eval mode during training ---------------------------------------------------------
    def _modes(self, model: torch.nn.Module, before: dict[str, bool], out: Outcome) -> None:
        """BatchNorm and dropout layers that do not train in train mode. Two cases: the step leaves
        them in eval mode (a train_step that calls model.eval() to measure accuracy and never calls
        model.train() again), or model.train() leaves BatchNorm in eval mode (a train() override:
        the frozen-BatchNorm idiom) while its running statistics are still the initial 0 and 1, so
        it never normalises by anything measured. Frozen BatchNorm with learned statistics (a
        pretrained backbone) is a pass fact."""
        kinds = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd)
        mods = [(n, m) for n, m in model.named_modules() if isinstance(m, kinds)]
        flipped = [n for n, m in mods if before.get(n) and not m.training]
        out.metric("left_in_eval_mode", len(flipped))
        if flipped:
            out.fail(f"After one train_step {len(flipped)} BatchNorm/dropout layer(s) are in eval mode: "
                     f"{_names(flipped, self.config.max_names)}. Every later step then trains with "
                     "dropout off and BatchNorm on frozen running statistics (its buffers stop "
                     "updating). If train_step calls model.eval() (to measure accuracy), call "
                     "model.train() again before it returns.", where=_common_module(flipped),
                     value=len(flipped), limit=0, metric="left_in_eval_mode")
            return
        frozen = [(n, m) for n, m in mods if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                  and not before.get(n, True) and not m.training]
        if not frozen:
            return
        fresh = [n for n, m in frozen if m.track_running_stats and m.running_mean is not None
                 and bool((m.running_mean == 0).all()) and bool((m.running_var == 1).all())]
        out.metric("frozen_batchnorm", len(frozen))
        if fresh:
            out.fail(f"{len(fresh)} BatchNorm layer(s) stay in eval mode while the model trains "
                     f"(model.train() leaves them so): {_names(fresh, self.config.max_names)}, and "
                     "their running statistics are still the initial mean 0 / variance 1: they never "
                     "normalise by the data and their buffers never update. Freezing BatchNorm is for "
                     "a pretrained backbone; for a model trained from scratch let train() reach them.",
                     where=_common_module(fresh), value=len(fresh), limit=0, metric="frozen_batchnorm")
        else:
            out.finding("pass", f"{len(frozen)} BatchNorm layer(s) stay in eval mode while the model "
                        "trains, on learned running statistics (the frozen-BatchNorm idiom of a "
                        "pretrained backbone).", where=_common_module([n for n, _ in frozen]),
                        value=len(frozen), metric="frozen_batchnorm")

    # ---- optimizer membership ------------------------------------------------------------------
    def _membership(self, ctx, model, opt, after, out: Outcome) -> tuple[set[str], set[str]]:
        """Names of the model's parameters the optimizer holds (and those it holds only as the
        user's own instance's parameters); findings for missing, frozen and foreign ones."""
        limit = self.config.max_names
        held_ids: dict[int, Any] = {}
        for group in opt.param_groups:
            for p in group["params"]:
                held_ids[id(p)] = group
        by_id = {id(p): n for n, p in after}
        held = {n for n, p in after if id(p) in held_ids}
        foreign = [i for i in held_ids if i not in by_id]
        user = ctx.subject.user_model
        user_names = {id(p): n for n, p in user.named_parameters()} if user is not None else {}
        of_user = [user_names[i] for i in foreign if i in user_names]
        others = [i for i in foreign if i not in user_names]
        if of_user:
            held |= set(of_user)
            out.warn(f"build_optimizer(params) ignores the parameters it is given and holds "
                     f"{len(of_user)} of the given model instance's own parameters "
                     f"({_names(sorted(of_user), limit)}). nndiag checks a copy of the model, so "
                     "these cannot be seen to change; write build_optimizer to use its params "
                     "argument.", where="<optimizer>", value=len(of_user), metric="foreign_params")
        if others:
            out.fail(f"The optimizer holds {len(others)} tensor(s) that are not parameters of this "
                     "model: it was built for another model instance (e.g. before the model was "
                     "re-created or copied), so it trains tensors the loss does not depend on. "
                     "Build the optimizer from this model's parameters.", where="<optimizer>",
                     value=len(others), limit=0, metric="foreign_params")
        missing = [n for n, p in after if p.requires_grad and n not in held]
        frozen_held = [n for n, p in after if not p.requires_grad and id(p) in held_ids]
        out.metric("missing_from_optimizer", len(missing))
        out.metric("frozen_in_optimizer", len(frozen_held))
        if missing:
            out.fail(f"{len(missing)} of {sum(p.requires_grad for _, p in after)} trainable parameter "
                     f"tensors are not in the optimizer: {_names(missing, limit)}. They get gradients "
                     "but are never updated. Build the optimizer from all of model.parameters() (or "
                     "add a param group for them); a layer created inside forward() after the "
                     "optimizer was built is missing the same way.", where=_common_module(missing),
                     value=len(missing), limit=0, metric="missing_from_optimizer")
        if frozen_held:
            out.warn(f"The optimizer holds {len(frozen_held)} frozen parameter tensor(s) "
                     f"(requires_grad=False): {_names(frozen_held, limit)}. They get no gradient and "
                     "stay as they are; fine if you mean to unfreeze them later, otherwise build the "
                     "optimizer from the parameters that require grad only.",
                     where=_common_module(frozen_held), value=len(frozen_held),
                     metric="frozen_in_optimizer")
        return held, set(of_user)

    # ---- did each parameter change -------------------------------------------------------------
    def _changes(self, ctx, opt, before, after, grads, held, via_user, out: Outcome) -> None:
        limit = self.config.max_names
        lr_of = {id(p): g.get("lr") for g in opt.param_groups for p in g["params"]}
        rows = []
        no_grad, zero_unchanged, zero_changed, applied_not, underflow, lr_zero = [], [], [], [], [], []
        frozen_changed, new, nonfinite = [], [], []
        for name, p in after:
            now = p.detach()
            old = before.get(name)
            changed = None if old is None else not _same(old, now)
            row = {"parameter": name, "shape": list(p.shape), "requires_grad": p.requires_grad,
                   "in_optimizer": name in held, "grad": grads.get(name, "none"), "changed": changed}
            if old is not None and changed and now.is_floating_point():
                delta = (now.float() - old.float())
                row["changed_fraction"] = float(delta.ne(0).float().mean())
                row["relative_change"] = float(delta.norm() / old.float().norm().clamp_min(1e-12))
            rows.append(row)
            if old is None:
                new.append(name)
                continue
            if name in via_user:
                row["changed"] = None  # the optimizer updates the user's instance, not this copy
                continue
            if p.is_floating_point() and not bool(torch.isfinite(now).all()):
                nonfinite.append(name)
            if not p.requires_grad:
                if changed:
                    frozen_changed.append(name)
                continue
            g = row["grad"]
            if changed:
                # After the user's train_step a zero gradient says nothing: the step may clear
                # gradients itself (a GAN before the other network's step). A change is training.
                if g == "zero" and not ctx.bench.has_own_step:
                    zero_changed.append(name)
                continue
            if name not in held:
                continue  # already reported as missing from the optimizer
            if g == "none":
                no_grad.append(name)
            elif g == "zero":
                zero_unchanged.append(name)
            elif lr_of.get(id(p)) is not None and _is_zero(lr_of[id(p)]):
                lr_zero.append(name)
            elif g == "nonzero" and _below_resolution(p, lr_of.get(id(p)), old):
                underflow.append(name)
            else:
                applied_not.append(name)
        out.data["parameters"] = rows
        self._step_size(out, rows, dims={n: p.dim() for n, p in after})
        self._half_rounding(out, rows, {n: p.dtype for n, p in after})
        n_train = sum(1 for n, p in after if p.requires_grad and n in before and n not in via_user)
        unchanged = [r["parameter"] for r in rows if r["requires_grad"] and r["changed"] is False]
        out.metric("changed", sum(1 for r in rows if r["requires_grad"] and r["changed"]))
        out.metric("unchanged", len(unchanged))
        step_not_applied = n_train and len(unchanged) == n_train and bool(applied_not)
        if step_not_applied:
            out.fail(f"One optimizer step changed none of the {n_train} trainable parameter tensors, "
                     "although they have gradients and are in the optimizer. "
                     + ("The train_step does not update the model: check that it calls "
                        "optimizer.step() after loss.backward(), on the optimizer it is given."
                        if ctx.bench.has_own_step else
                        "The optimizer does not apply the gradients: check its learning rate."),
                     where="<model>", value=0, limit=n_train, metric="changed")
        if no_grad and ctx.bench.has_own_step and len(no_grad) == n_train:
            # everything unchanged and no gradient left to explain it: the user's step is the cause
            out.fail(f"train_step changed none of the {n_train} trainable parameter tensors and left "
                     "no gradient behind, so it does not update the model. Check that it calls "
                     "loss.backward() and then optimizer.step() on the optimizer it is given, with "
                     "optimizer.zero_grad() before backward() (not between backward() and step()).",
                     where="<train_step>", value=0, limit=n_train, metric="changed")
        elif no_grad:
            out.fail(f"{len(no_grad)} trainable parameter tensor(s) did not change because they got "
                     f"no gradient at all: {_names(no_grad, limit)}. The loss does not depend on them: "
                     "the layer is not used in forward(), or its output is cut off by .detach(), "
                     ".data, torch.no_grad() or a numpy round trip. Use the layer's output directly "
                     "(or freeze the layer on purpose with requires_grad_(False)).",
                     where=_common_module(no_grad), value=len(no_grad), limit=0, metric="no_gradient")
        if lr_zero:
            out.fail(f"{len(lr_zero)} parameter tensor(s) have a gradient but did not change because "
                     f"their param group has lr=0: {_names(lr_zero, limit)}. Give the group a "
                     "learning rate (or freeze those parameters on purpose).",
                     where=_common_module(lr_zero), value=0.0, metric="lr")
        if applied_not and not step_not_applied:
            out.fail(f"{len(applied_not)} parameter tensor(s) have a non-zero gradient and are in "
                     f"the optimizer, yet the step left them unchanged: {_names(applied_not, limit)}. "
                     "Something resets them after the step (a re-initialisation or copy in "
                     "train_step or forward), or the optimizer skips them.",
                     where=_common_module(applied_not), value=len(applied_not), limit=0,
                     metric="unchanged")
        # zero at the initial weights only (a zero-initialised layer downstream): trains from step 2
        later = self._gradient_later(ctx, zero_unchanged + zero_changed)
        if later:
            out.finding("pass", f"{len(later)} parameter tensor(s) get an exactly zero gradient at "
                        "initialisation but a non-zero one within the first training steps, so "
                        f"they train: {_names(sorted(later), limit)}. A zero-initialised layer "
                        "downstream (a ViT head, a residual block's last BatchNorm scale) does this "
                        "by design.", where=_common_module(sorted(later)), value=len(later),
                        metric="zero_at_init_only")
            zero_unchanged = [n for n in zero_unchanged if n not in later]
            zero_changed = [n for n in zero_changed if n not in later]
        facts = self._redundant(ctx, after, underflow + zero_unchanged + zero_changed)
        out.metric("redundant_unchanged", len(facts))
        if facts:
            out.finding("pass", f"{len(facts)} bias/normalisation parameter tensor(s) get a zero or "
                        f"rounding-size gradient, so one step leaves them (nearly) as they are: "
                        f"{_names(sorted(facts), limit)}. A normalisation after them removes their "
                        "effect (BatchNorm subtracts the per-channel mean), so this is redundancy, not "
                        "a training problem (bias=False saves the parameters).",
                        where=_common_module(sorted(facts)), value=len(facts), metric="redundant_unchanged")
            underflow = [n for n in underflow if n not in facts]
            zero_unchanged = [n for n in zero_unchanged if n not in facts]
            zero_changed = [n for n in zero_changed if n not in facts]
        if underflow:
            out.warn(f"{len(underflow)} parameter tensor(s) have a gradient so small that lr x grad "
                     f"is below float32 resolution, so the step left them bit-for-bit unchanged: "
                     f"{_names(underflow, limit)}. Usual for a bias followed by a normalisation "
                     "layer (its gradient is zero up to rounding); otherwise the gradient vanishes "
                     "before reaching them (see the gradients probe).",
                     where=_common_module(underflow), value=len(underflow), metric="below_resolution")
        zero = zero_unchanged + zero_changed
        if zero:
            zero_everywhere, batches = self._zero_on_other_batches(ctx, zero)
            out.data["zero_gradient"] = {"parameters": zero, "zero_on_all_batches": zero_everywhere,
                                         "batches_checked": batches}
            still = [n for n in zero_unchanged if n in zero_everywhere]
            moved = [n for n in zero_changed if n in zero_everywhere]
            on = f"on all {batches} probe batches" if batches > 1 else "on the probe batch"
            sizes = {n: p.numel() for n, p in after}
            total = sum(sizes[n] for n, p in after if p.requires_grad and p.dim() >= 2) or 1
            share = sum(sizes.get(n, 0) for n in still) / total
            dims = {n: p.dim() for n, p in after}
            side_path = all(dims.get(n, 2) >= 2 or n.endswith("bias") for n in still)
            if still and side_path and share < 0.1:  # a small dead side path (gradients' dead_share)
                out.finding("pass", f"{len(still)} small parameter tensor(s), {share:.1%} of the weights, "
                            f"never change: their gradient is exactly zero {on}: {_names(still, limit)}. "
                            "A dead side path (e.g. a squeeze-excitation block whose few ReLUs are all "
                            "inactive); the rest of the model trains.", where=_common_module(still),
                            value=len(still), metric="zero_gradient")
                still = []
            if still:
                out.warn(f"{len(still)} parameter tensor(s) never change: their gradient is exactly "
                         f"zero {on}, so no step can move them: {_names(still, limit)}. The loss does "
                         "not respond to them: dead ReLUs, saturated sigmoid/tanh units, a softmax over "
                         "a single unit, or a product with zero upstream (the gradients, dead-neurons, "
                         "saturation and loss-setup probes say which).",
                         where=_common_module(still), value=len(still), metric="zero_gradient")
            if moved:
                out.warn(f"{len(moved)} parameter tensor(s) changed although their gradient is exactly "
                         f"zero {on}: {_names(moved, limit)}. Only weight decay (or momentum) moves "
                         "them, so the loss does not train them.",
                         where=_common_module(moved), value=len(moved), metric="zero_gradient")
        if frozen_changed:
            out.warn(f"{len(frozen_changed)} frozen parameter tensor(s) (requires_grad=False) changed "
                     f"during the step: {_names(frozen_changed, limit)}. Code in train_step or "
                     "forward() writes to them; check that this is meant.",
                     where=_common_module(frozen_changed), value=len(frozen_changed),
                     metric="frozen_changed")
        if nonfinite:
            out.warn(f"After one step {len(nonfinite)} parameter tensor(s) hold NaN or Inf: "
                     f"{_names(nonfinite, limit)}. See the nan probe for where it starts.",
                     where=_common_module(nonfinite), value=len(nonfinite), metric="nonfinite")
        if new:
            out.data["created_during_step"] = new

    def _step_size(self, out: Outcome, rows: list[dict], dims: dict[str, int]) -> None:
        """How far one step moved the weights: the median over weight tensors (2+ dimensions) of
        |w_after - w_before| / |w_before|. A step that changes every weight by a millionth of
        itself (gradients clipped to 1e-6, float16 weights under a small SGD step) "changes"
        every parameter bit-wise yet trains nothing."""
        rel = sorted(r.get("relative_change", 0.0) if r["changed"] else 0.0 for r in rows
                     if r["requires_grad"] and r["changed"] is not None and dims.get(r["parameter"], 2) >= 2)
        if not rel:
            return
        med = rel[len(rel) // 2]
        out.metric("median_relative_change", med)
        cfg = self.config
        if 0 < med < cfg.tiny_step_fail:  # 0: unchanged tensors, reported with their cause
            out.fail(f"One step changes the weights by a median {med:.2g} of their norm over "
                     f"{len(rel)} weight tensors (limit {cfg.tiny_step_fail:g}): that many steps later "
                     "the model is still where it started. Usual causes: gradients clipped to a tiny "
                     "max_norm, a learning rate far too small, float16 weights whose update rounds away "
                     "(keep float32 master weights: torch.autocast), or a loss scaled down by a huge "
                     "factor.", where="<model>", value=med, limit=cfg.tiny_step_fail,
                     metric="median_relative_change")

    def _half_rounding(self, out: Outcome, rows: list[dict], dtypes: dict) -> None:
        """float16/bfloat16 weights whose step rounds away for most elements: the update is below
        the format's spacing (3 significant digits), so training stalls where float32 trains."""
        half = (torch.float16, torch.bfloat16)
        lost = [r for r in rows if r["requires_grad"] and dtypes.get(r["parameter"]) in half
                and r.get("changed_fraction", 0.0 if r["changed"] is False else 1.0) < 0.5
                and r["changed"] is not None]
        out.metric("half_rounded", len(lost))
        if lost:
            names = [r["parameter"] for r in lost]
            worst = min(r.get("changed_fraction", 0.0) for r in lost)
            out.fail(f"{len(lost)} half-precision parameter tensor(s) kept most of their elements "
                     f"bit-for-bit unchanged after one step (as few as {worst:.0%} moved): "
                     f"{_names(names, self.config.max_names)}. In float16/bfloat16 an update smaller "
                     "than about 1/1000 of the weight rounds away. Keep float32 weights and use "
                     "torch.autocast for half-precision compute (or a GradScaler with fp16).",
                     where=_common_module(names), value=worst, limit=0.5, metric="half_rounded")

    def _gradient_later(self, ctx, names: list[str]) -> set[str]:
        """Of ``names`` (zero gradient at the initial weights), those that get a non-zero gradient
        in a later step of the shared training pass (the one the gradients and nan probes read)."""
        if not names:
            return set()
        from nndiag.training_trace import shared_training_trace

        try:
            trace = shared_training_trace(ctx, LATER_STEPS, LATER_STEPS)
        except Exception:  # noqa: BLE001 - without the pass the init-time verdict stands
            return set()
        return {n for n in names if any(st.get(n) is not None and st[n].max_abs_grad > 0
                                        for st in trace.stats[1:])}

    def _redundant(self, ctx, after, names: list[str]) -> set[str]:
        """Of ``names`` (unchanged or changed only by decay, with a zero or rounding-size gradient),
        the biases that feed a normalisation op (found by a traced forward) or are otherwise
        removed by what follows (a 1-D ``*bias`` with such a gradient: attention key biases, which
        the softmax cancels): their gradient is zero by construction."""
        if not names:
            return set()
        from nndiag.probes.gradients import _biases_before_normalisation

        dims = {n: p.dim() for n, p in after}
        try:
            feeding = _biases_before_normalisation(ctx)
        except Exception:  # noqa: BLE001 - the trace is an aid; without it only the shapes count
            feeding = set()
        return {n for n in names if n in feeding or (dims.get(n, 2) < 2 and n.rsplit(".", 1)[-1].endswith("bias"))}

    def _zero_on_other_batches(self, ctx, names: list[str]) -> tuple[set[str], int]:
        """Of ``names`` (all-zero gradient on the first batch), those whose gradient is also zero
        on up to ``zero_gradient_batches`` probe batches, at the initial weights; and how many
        batches were looked at. Without a loss only the first batch counts."""
        s, bench = ctx.subject, ctx.bench
        if s.loss_fn is None and s.training_step is None:
            return set(names), 1
        first = bench.first_batch()
        want = self.config.zero_gradient_batches * max(batch_size(first), 1)
        batches = bench.probe_batches(want)[: self.config.zero_gradient_batches]
        model = bench.fresh_model()
        params = dict(model.named_parameters())
        zero = set(n for n in names if n in params)
        for batch in batches:
            if not zero:
                break
            model.zero_grad(set_to_none=True)
            with fork_seeded(ctx.seed):
                loss = bench.compute_loss(model, batch)
                if not loss.requires_grad:
                    break
                bench.backward(loss)
            zero = {n for n in zero if _grad_state(params[n]) != "nonzero"}
        return zero | (set(names) - set(params)), len(batches)

    def _diagnostic_grads(self, ctx) -> dict[str, str]:
        """Gradient state per parameter from a separate loss/backward, for a train_step that clears
        gradients before returning. Empty when there is no loss to differentiate."""
        s = ctx.subject
        if s.loss_fn is None and s.training_step is None:
            return {}
        model = ctx.bench.fresh_model()
        with fork_seeded(ctx.seed):
            loss = ctx.bench.compute_loss(model, ctx.bench.first_batch())
            if loss.requires_grad:
                ctx.bench.backward(loss)
        return {n: _grad_state(p) for n, p in model.named_parameters()}

    # ---- are gradients cleared between train_step calls ----------------------------------------
    def _zero_grad_check(self, ctx, batch, out: Outcome) -> None:
        bench, cfg = ctx.bench, self.config
        model_a = bench.fresh_model()
        opt_a = bench.make_optimizer(model_a)
        with fork_seeded(ctx.seed):
            bench.train_one_step(model_a, opt_a, batch)
        g1 = _grads(model_a)
        if all(g is None for g in g1.values()):
            out.data["zero_grad_check"] = "pass: train_step leaves no gradient behind (set to None)"
            out.metric("accumulated_fraction", 0.0)
            return
        try:
            model_b = copy.deepcopy(model_a)
        except Exception as exc:  # noqa: BLE001 - a model that cannot be copied: say so
            out.finding("pass", f"Could not check that train_step clears gradients: the model cannot be "
                     f"deep-copied ({type(exc).__name__}: {exc}).", where="<train_step>")
            return
        for p in model_b.parameters():
            p.grad = None
        with fork_seeded(ctx.seed):
            bench.train_one_step(model_a, opt_a, batch)
        g2 = _grads(model_a)
        opt_b = bench.make_optimizer(model_b)
        with fork_seeded(ctx.seed):
            bench.train_one_step(model_b, opt_b, batch)
        gb = _grads(model_b)
        names = [n for n in g1 if g1[n] is not None and g2.get(n) is not None and gb.get(n) is not None]
        if not names:
            out.finding("pass", "Could not check that train_step clears gradients: after its second call no "
                     "parameter holds a gradient to compare.", where="<train_step>")
            return
        a, residual, per_param = accumulation(g1, g2, gb, names)
        out.metric("accumulated_fraction", a)
        out.metric("zero_grad_residual", residual)
        out.data["zero_grad_check"] = {"accumulated_fraction": a, "residual": residual,
                                       "per_parameter": per_param}
        if not math.isfinite(a) or not math.isfinite(residual):
            out.finding("pass", "Could not check that train_step clears gradients: the gradients are not finite "
                     "(see the nan probe).", where="<train_step>")
            return
        if residual > cfg.residual_tolerance:
            closure = isinstance(opt_a, torch.optim.LBFGS)
            why = ("LBFGS evaluates its closure several times per step (the closure clears the "
                   "gradients each time), so the gradients left behind are not one step's"
                   if closure else "Gradient clipping, scaling or randomness not driven by torch's "
                   "generator changes the gradients between calls")
            # Not decided is not a problem found: a fact, with the numbers.
            out.finding("pass", f"Could not tell whether train_step clears gradients: after a second "
                        f"call on the same batch the gradient is neither the fresh gradient nor the "
                        f"fresh gradient plus the previous one (relative residual {residual:.2g} > "
                        f"{cfg.residual_tolerance:g}). {why}.", where="<train_step>", value=residual,
                        limit=cfg.residual_tolerance, metric="zero_grad_residual")
            out.data["zero_grad_check"]["decided"] = False
            return
        if a > cfg.accumulation_limit:
            stuck = [n for n, v in per_param.items() if v > cfg.accumulation_limit]
            part = (f"all {len(per_param)} parameter tensors" if len(stuck) == len(per_param)
                    else f"{len(stuck)} of {len(per_param)} parameter tensors ({_names(stuck, cfg.max_names)})")
            out.fail(f"train_step does not clear gradients between steps: after a second call on the "
                     f"same batch, {part} hold the previous step's gradient plus the new one "
                     f"(fraction of the previous gradient kept: {a:.2f}, limit "
                     f"{cfg.accumulation_limit}). Each update then uses the sum of all past "
                     "gradients. Call optimizer.zero_grad() before loss.backward() in train_step "
                     "(or switch this check off with check_zero_grad=False if it accumulates on "
                     "purpose).", where="<train_step>", value=a, limit=cfg.accumulation_limit,
                     metric="accumulated_fraction")

    def _summarise(self, out: Outcome) -> None:
        m = out.metrics
        bits = [f"{m.get('changed', 0)} of {m.get('trainable', 0)} trainable parameter tensors changed "
                "after one step"]
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


def accumulation(g1: dict, g2: dict, gb: dict, names: list[str]) -> tuple[float, float, dict]:
    """Least-squares ``a`` in ``g2 - gB = a * g1`` over ``names`` (0: cleared, 1: accumulated),
    the relative residual ``|g2 - gB - a g1| / (|g1| + |gB|)``, and ``a`` per parameter."""
    per = {}
    num = den = 0.0
    for n in names:
        d = (g2[n] - gb[n]).double().flatten()
        x = g1[n].double().flatten()
        xx = float(x @ x)
        num += float(d @ x)
        den += xx
        if xx > 0:
            per[n] = float(d @ x) / xx
    if den == 0:
        return 0.0, 0.0, per
    a = num / den
    res2 = scale2 = 0.0
    for n in names:
        r = (g2[n] - gb[n]).double() - a * g1[n].double()
        res2 += float((r * r).sum())
        scale2 += float(g1[n].double().norm() + gb[n].double().norm()) ** 2
    residual = math.sqrt(res2) / max(math.sqrt(scale2), 1e-300)
    return a, residual, per


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {n: (p.grad.detach().clone() if p.grad is not None else None)
            for n, p in model.named_parameters()}


def _is_zero(lr: Any) -> bool:
    try:
        return float(lr) == 0.0
    except (TypeError, ValueError, RuntimeError):
        return False


def _below_resolution(p: torch.Tensor, lr: Any, old: torch.Tensor) -> bool:
    """True when max |lr * g| is below the float32 spacing of the parameter's values: an SGD-size
    step could not move any element (Adam's normalised step is larger, so it would have moved)."""
    try:
        lr = float(lr)
    except (TypeError, ValueError, RuntimeError):
        return False
    if p.grad is None:  # the state came from a separate backward (train_step cleared them)
        return False
    g = p.grad.detach().abs().float()
    spacing = old.detach().abs().float() * _FLOAT32_EPS / 2
    return bool((lr * g <= spacing).all())


def _common_module(names: list[str]) -> str:
    """The module path shared by all the parameter names (``fc1`` for fc1.weight and fc1.bias)."""
    mods = [n.rsplit(".", 1)[0] if "." in n else "<model>" for n in names]
    unique = list(dict.fromkeys(mods))
    if len(unique) <= 3:
        return ", ".join(unique)
    return ", ".join(unique[:3]) + f" (+{len(unique) - 3} more)"


@hookimpl
def nndiag_register_probes():
    """Register the updates probe."""
    return [UpdatesProbe]
