"""The optimizer a check steps: the default one, a copy when ``build_optimizer`` returns the
user's own optimizer, and whether ``step`` needs a closure (LBFGS)."""

from __future__ import annotations

import inspect
from typing import Any, Iterable

import torch

from nndiag.errors import SubjectError, describe_exception

DEFAULT_LR = 1e-3  # contract §1: the default optimizer is Adam(params, lr=1e-3)


def default_optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer used when the file has no ``build_optimizer`` (contract §1)."""
    return torch.optim.Adam(params, lr=DEFAULT_LR)


def checked_optimizer(opt: Any, params: list[torch.nn.Parameter],
                      user_params: frozenset[int] = frozenset()) -> torch.optim.Optimizer:
    """What ``build_optimizer(params)`` returned, as an optimizer nndiag may step (see
    :func:`own_copy`); SubjectError for a class or anything that is not an optimizer.

    ``user_params`` are the ids of the user's own model instance's parameters (``model = Net()``
    in the file, ``model=`` in the API): an optimizer over those is the user's own optimizer, used
    as they would use it, so a like one is built over the copy. An optimizer over any other
    parameters is kept as it is: it is the bug the ``updates`` probe names ("not parameters of
    this model")."""
    if isinstance(opt, type):
        raise SubjectError(
            f"build_optimizer(params) returned the class {opt.__name__}, not an optimizer.",
            hint=f"Return an instance: `return torch.optim.{opt.__name__}(params, lr=1e-3)`.",
        )
    if isinstance(opt, torch.optim.Optimizer):
        held = [p for g in opt.param_groups for p in g["params"]]
        if held and user_params and all(id(p) in user_params for p in held):
            return own_copy(opt, params)
        return opt
    raise SubjectError(
        f"build_optimizer(params) returned a {type(opt).__name__}, not a torch.optim.Optimizer.",
        hint="Return an optimizer, e.g. `return torch.optim.Adam(params, lr=1e-3)`.",
    )


def needs_closure(opt: torch.optim.Optimizer) -> bool:
    """True when ``opt.step`` requires a closure (LBFGS)."""
    try:
        param = inspect.signature(type(opt).step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is inspect.Parameter.empty


def own_copy(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``opt`` itself when it holds the parameters it was given; a new optimizer of the same class
    and settings over ``params`` when it holds none of them.

    A notebook user's ``build_optimizer`` often returns the optimizer of their own model: stepping
    it would change their model and their optimizer (its lr, its state), never the copy nndiag
    checks.
    """
    given = {id(p) for p in params}
    held = [p for g in opt.param_groups for p in g["params"]]
    if not held or any(id(p) in given for p in held):
        return opt
    group = opt.param_groups[0]
    settings = {k: group[k] for k in opt.defaults if k in group}
    try:
        return type(opt)(params, **settings)
    except Exception as exc:  # noqa: BLE001 - a custom optimizer with another constructor
        raise SubjectError(
            f"build_optimizer(params) returned a {type(opt).__name__} that holds none of the "
            "parameters it was given (your own model's optimizer?), and nndiag could not build a new "
            f"one like it: {describe_exception(exc)}",
            hint="Build the optimizer from the params argument: `return torch.optim.SGD(params, lr=0.1)`.",
        ) from exc
