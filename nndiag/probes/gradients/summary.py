"""One parameter's gradient statistics over the examined steps of the shared training pass, where
the graph is cut, and how parameters are named in a finding."""

from __future__ import annotations

from dataclasses import dataclass

from nndiag.training_trace import ParamStats


@dataclass
class ParamSummary:
    """One parameter's statistics over the examined steps."""

    name: str
    connected: bool
    grad_norm: float  # mean over steps
    mean_abs_grad: float  # mean over steps
    max_abs_grad: float  # max over steps
    update_ratio: float | None  # lr * |g| / |w|, mean over steps (TheDeepChecker's update/weight ratio)
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


def name_list(names: list[str], limit: int = 6) -> str:
    """The first ``limit`` names, comma-separated, and how many more there are."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")
