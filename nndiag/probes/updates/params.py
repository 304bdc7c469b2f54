"""The state of one parameter as the updates checks read it: its gradient, bit-for-bit equality
before and after a step, whether a step could move it at all, and how parameters are named in a
finding."""

from __future__ import annotations

from typing import Any

import torch

FLOAT32_EPS = float(torch.finfo(torch.float32).eps)


def name_list(names: list[str], limit: int) -> str:
    """The first ``limit`` names, comma-separated, and how many more there are."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def grad_state(p: torch.Tensor) -> str:
    """The state of ``p``'s gradient: "none", "nonfinite", "zero" (all exactly 0) or "nonzero"."""
    g = p.grad
    if g is None:
        return "none"
    g = g.detach()
    if not bool(torch.isfinite(g).all()):
        return "nonfinite"
    if not bool(g.ne(0).any()):
        return "zero"
    return "nonzero"


def same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-for-bit equality, NaN == NaN (a parameter that stays NaN did not change)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if torch.equal(a, b):
        return True
    if a.is_floating_point() or a.is_complex():
        both_nan = torch.isnan(a) & torch.isnan(b)
        return bool(((a == b) | both_nan).all())
    return False


def grads_of(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    """A copy of every parameter's gradient by name (None where it has none)."""
    return {n: (p.grad.detach().clone() if p.grad is not None else None)
            for n, p in model.named_parameters()}


def is_zero_lr(lr: Any) -> bool:
    """True when the learning rate ``lr`` is a number equal to 0 (False when it is not a number)."""
    try:
        return float(lr) == 0.0
    except (TypeError, ValueError, RuntimeError):
        return False


def below_resolution(p: torch.Tensor, lr: Any, old: torch.Tensor) -> bool:
    """True when max |lr * g| is below the float32 spacing of the parameter's values: an SGD-size
    step could not move any element (Adam's normalised step is larger, so it would have moved)."""
    try:
        lr = float(lr)
    except (TypeError, ValueError, RuntimeError):
        return False
    if p.grad is None:  # the state came from a separate backward (train_step cleared them)
        return False
    g = p.grad.detach().abs().float()
    spacing = old.detach().abs().float() * FLOAT32_EPS / 2
    return bool((lr * g <= spacing).all())


def common_module(names: list[str]) -> str:
    """The module path shared by all the parameter names (``fc1`` for fc1.weight and fc1.bias)."""
    mods = [n.rsplit(".", 1)[0] if "." in n else "<model>" for n in names]
    unique = list(dict.fromkeys(mods))
    if len(unique) <= 3:
        return ", ".join(unique)
    return ", ".join(unique[:3]) + f" (+{len(unique) - 3} more)"
