"""Optimizer membership, by identity over ``optimizer.param_groups``: every trainable parameter
held, no frozen one held by mistake, no tensor of another model instance."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nndiag.probe import Outcome, ProbeContext
from nndiag.probes.updates.params import common_module, name_list

if TYPE_CHECKING:
    from nndiag.probes.updates import UpdatesConfig


def check_membership(cfg: UpdatesConfig, ctx: ProbeContext, model, opt, after,
                     out: Outcome) -> tuple[set[str], set[str]]:
    """Names of the model's parameters the optimizer holds (and those it holds only as the
    user's own instance's parameters); findings for missing, frozen and foreign ones."""
    limit = cfg.max_names
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
                 f"({name_list(sorted(of_user), limit)}). nndiag checks a copy of the model, so "
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
                 f"tensors are not in the optimizer: {name_list(missing, limit)}. They get gradients "
                 "but are never updated. Build the optimizer from all of model.parameters() (or "
                 "add a param group for them); a layer created inside forward() after the "
                 "optimizer was built is missing the same way.", where=common_module(missing),
                 value=len(missing), limit=0, metric="missing_from_optimizer")
    if frozen_held:
        out.warn(f"The optimizer holds {len(frozen_held)} frozen parameter tensor(s) "
                 f"(requires_grad=False): {name_list(frozen_held, limit)}. They get no gradient and "
                 "stay as they are; fine if you mean to unfreeze them later, otherwise build the "
                 "optimizer from the parameters that require grad only.",
                 where=common_module(frozen_held), value=len(frozen_held),
                 metric="frozen_in_optimizer")
    return held, set(of_user)
