"""Did each parameter change: one step compared bit for bit, each unchanged trainable parameter
explained by its gradient, with the zero gradients looked at again (later steps of the shared
training pass, other probe batches, biases a normalisation cancels)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from nndiag.batches import batch_size
from nndiag.probe import Outcome, ProbeContext
from nndiag.probes.updates.params import (below_resolution, common_module, grad_state, is_zero_lr,
                                          name_list, same_values)
from nndiag.probes.updates.step_size import check_half_rounding, check_step_size
from nndiag.seeding import fork_seeded

if TYPE_CHECKING:
    from nndiag.probes.updates import UpdatesConfig

# Steps of the shared training pass whose gradients tell a zero gradient at init from a dead one
# (the gradients probe's default window; the pass is planned once for every probe that reads it).
LATER_STEPS = 5


def check_changes(cfg: UpdatesConfig, ctx: ProbeContext, opt, before, after, grads, held, via_user,
                  out: Outcome) -> None:
    """Compare every parameter before and after the step and explain each unchanged trainable
    one by its gradient (none, zero, lr=0, below float resolution, not applied); record the
    per-parameter rows and the step-size and half-precision checks."""
    limit = cfg.max_names
    lr_of = {id(p): g.get("lr") for g in opt.param_groups for p in g["params"]}
    rows = []
    no_grad, zero_unchanged, zero_changed, applied_not, underflow, lr_zero = [], [], [], [], [], []
    frozen_changed, new, nonfinite = [], [], []
    for name, p in after:
        now = p.detach()
        old = before.get(name)
        changed = None if old is None else not same_values(old, now)
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
        elif lr_of.get(id(p)) is not None and is_zero_lr(lr_of[id(p)]):
            lr_zero.append(name)
        elif g == "nonzero" and below_resolution(p, lr_of.get(id(p)), old):
            underflow.append(name)
        else:
            applied_not.append(name)
    out.data["parameters"] = rows
    check_step_size(cfg, out, rows, dims={n: p.dim() for n, p in after})
    check_half_rounding(cfg, out, rows, {n: p.dtype for n, p in after})
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
                 f"no gradient at all: {name_list(no_grad, limit)}. The loss does not depend on them: "
                 "the layer is not used in forward(), or its output is cut off by .detach(), "
                 ".data, torch.no_grad() or a numpy round trip. Use the layer's output directly "
                 "(or freeze the layer on purpose with requires_grad_(False)).",
                 where=common_module(no_grad), value=len(no_grad), limit=0, metric="no_gradient")
    if lr_zero:
        out.fail(f"{len(lr_zero)} parameter tensor(s) have a gradient but did not change because "
                 f"their param group has lr=0: {name_list(lr_zero, limit)}. Give the group a "
                 "learning rate (or freeze those parameters on purpose).",
                 where=common_module(lr_zero), value=0.0, metric="lr")
    if applied_not and not step_not_applied:
        out.fail(f"{len(applied_not)} parameter tensor(s) have a non-zero gradient and are in "
                 f"the optimizer, yet the step left them unchanged: {name_list(applied_not, limit)}. "
                 "Something resets them after the step (a re-initialisation or copy in "
                 "train_step or forward), or the optimizer skips them.",
                 where=common_module(applied_not), value=len(applied_not), limit=0,
                 metric="unchanged")
    # zero at the initial weights only (a zero-initialised layer downstream): trains from step 2
    later = gradient_later(ctx, zero_unchanged + zero_changed)
    if later:
        out.finding("pass", f"{len(later)} parameter tensor(s) get an exactly zero gradient at "
                    "initialisation but a non-zero one within the first training steps, so "
                    f"they train: {name_list(sorted(later), limit)}. A zero-initialised layer "
                    "downstream (a ViT head, a residual block's last BatchNorm scale) does this "
                    "by design.", where=common_module(sorted(later)), value=len(later),
                    metric="zero_at_init_only")
        zero_unchanged = [n for n in zero_unchanged if n not in later]
        zero_changed = [n for n in zero_changed if n not in later]
    facts = redundant(ctx, after, underflow + zero_unchanged + zero_changed)
    out.metric("redundant_unchanged", len(facts))
    if facts:
        out.finding("pass", f"{len(facts)} bias/normalisation parameter tensor(s) get a zero or "
                    f"rounding-size gradient, so one step leaves them (nearly) as they are: "
                    f"{name_list(sorted(facts), limit)}. A normalisation after them removes their "
                    "effect (BatchNorm subtracts the per-channel mean), so this is redundancy, not "
                    "a training problem (bias=False saves the parameters).",
                    where=common_module(sorted(facts)), value=len(facts), metric="redundant_unchanged")
        underflow = [n for n in underflow if n not in facts]
        zero_unchanged = [n for n in zero_unchanged if n not in facts]
        zero_changed = [n for n in zero_changed if n not in facts]
    if underflow:
        out.warn(f"{len(underflow)} parameter tensor(s) have a gradient so small that lr x grad "
                 f"is below float32 resolution, so the step left them bit-for-bit unchanged: "
                 f"{name_list(underflow, limit)}. Usual for a bias followed by a normalisation "
                 "layer (its gradient is zero up to rounding); otherwise the gradient vanishes "
                 "before reaching them (see the gradients probe).",
                 where=common_module(underflow), value=len(underflow), metric="below_resolution")
    zero = zero_unchanged + zero_changed
    if zero:
        zero_everywhere, batches = zero_on_other_batches(cfg, ctx, zero)
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
                        f"never change: their gradient is exactly zero {on}: {name_list(still, limit)}. "
                        "A dead side path (e.g. a squeeze-excitation block whose few ReLUs are all "
                        "inactive); the rest of the model trains.", where=common_module(still),
                        value=len(still), metric="zero_gradient")
            still = []
        if still:
            out.warn(f"{len(still)} parameter tensor(s) never change: their gradient is exactly "
                     f"zero {on}, so no step can move them: {name_list(still, limit)}. The loss does "
                     "not respond to them: dead ReLUs, saturated sigmoid/tanh units, a softmax over "
                     "a single unit, or a product with zero upstream (the gradients, dead-neurons, "
                     "saturation and loss-setup probes say which).",
                     where=common_module(still), value=len(still), metric="zero_gradient")
        if moved:
            out.warn(f"{len(moved)} parameter tensor(s) changed although their gradient is exactly "
                     f"zero {on}: {name_list(moved, limit)}. Only weight decay (or momentum) moves "
                     "them, so the loss does not train them.",
                     where=common_module(moved), value=len(moved), metric="zero_gradient")
    if frozen_changed:
        out.warn(f"{len(frozen_changed)} frozen parameter tensor(s) (requires_grad=False) changed "
                 f"during the step: {name_list(frozen_changed, limit)}. Code in train_step or "
                 "forward() writes to them; check that this is meant.",
                 where=common_module(frozen_changed), value=len(frozen_changed),
                 metric="frozen_changed")
    if nonfinite:
        out.warn(f"After one step {len(nonfinite)} parameter tensor(s) hold NaN or Inf: "
                 f"{name_list(nonfinite, limit)}. See the nan probe for where it starts.",
                 where=common_module(nonfinite), value=len(nonfinite), metric="nonfinite")
    if new:
        out.data["created_during_step"] = new


def gradient_later(ctx: ProbeContext, names: list[str]) -> set[str]:
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

def redundant(ctx: ProbeContext, after, names: list[str]) -> set[str]:
    """Of ``names`` (unchanged or changed only by decay, with a zero or rounding-size gradient),
    the biases that feed a normalisation op (found by a traced forward) or are otherwise
    removed by what follows (a 1-D ``*bias`` with such a gradient: attention key biases, which
    the softmax cancels): their gradient is zero by construction."""
    if not names:
        return set()
    from nndiag.probes.gradients.structure import biases_before_normalisation

    dims = {n: p.dim() for n, p in after}
    try:
        feeding = biases_before_normalisation(ctx)
    except Exception:  # noqa: BLE001 - the trace is an aid; without it only the shapes count
        feeding = set()
    return {n for n in names if n in feeding or (dims.get(n, 2) < 2 and n.rsplit(".", 1)[-1].endswith("bias"))}

def zero_on_other_batches(cfg: UpdatesConfig, ctx: ProbeContext, names: list[str]) -> tuple[set[str], int]:
    """Of ``names`` (all-zero gradient on the first batch), those whose gradient is also zero
    on up to ``zero_gradient_batches`` probe batches, at the initial weights; and how many
    batches were looked at. Without a loss only the first batch counts."""
    s, bench = ctx.subject, ctx.bench
    if s.loss_fn is None and s.training_step is None:
        return set(names), 1
    first = bench.first_batch()
    want = cfg.zero_gradient_batches * max(batch_size(first), 1)
    batches = bench.probe_batches(want)[: cfg.zero_gradient_batches]
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
        zero = {n for n in zero if grad_state(params[n]) != "nonzero"}
    return zero | (set(names) - set(params)), len(batches)

def diagnostic_grads(ctx: ProbeContext) -> dict[str, str]:
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
    return {n: grad_state(p) for n, p in model.named_parameters()}
