"""Broken symmetry: the units of a layer that start identical, and whether training separates them.

When every weight of a layer is initialised to the same constant (``nn.init.constant_``, a
hand-written ``fill_``), all of its units compute the same function, get the same gradient and so
stay identical for ever: a layer of 128 units trains as one (DeepCrime's "change weights
initialisation" operator; issue 9 found nothing named it). Random initialisation never gives two
identical rows, so the check costs one comparison per weight matrix, and a short training run only
when identical units exist at all. A layer whose identical rows the loss separates (a zero-
initialised output layer, whose units get different targets) is healthy: only units still
identical after the steps are reported.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

#: Modules whose weight rows are units (Linear features, Conv output channels).
_UNIT_LAYERS = (torch.nn.Linear, torch.nn.modules.conv._ConvNd, torch.nn.Bilinear)


@dataclass(frozen=True)
class IdenticalUnits:
    """A layer whose units are all identical: its weight rows (and biases) are equal."""

    layer: str  # module path
    kind: str  # module class name
    units: int


def identical_unit_layers(model: torch.nn.Module, rtol: float = 0.0) -> list[IdenticalUnits]:
    """Layers with more than one unit whose weight rows and biases are all equal.

    ``rtol`` > 0 allows differences up to that fraction of the largest weight: after training,
    identical units may differ in the last bits where a kernel sums rows in another order.
    """
    found = []
    for path, module in model.named_modules():
        if not isinstance(module, _UNIT_LAYERS):
            continue
        weight = getattr(module, "weight", None)
        if not isinstance(weight, torch.Tensor) or weight.dim() < 2 or weight.shape[0] < 2:
            continue
        if isinstance(weight, torch.nn.parameter.UninitializedParameter) or weight.is_meta:
            continue
        rows = weight.detach().reshape(weight.shape[0], -1).double()
        if not _all_equal(rows, rtol):
            continue
        bias = getattr(module, "bias", None)
        if isinstance(bias, torch.Tensor) and bias.numel() > 1 and not _all_equal(
                bias.detach().double().reshape(-1, 1), rtol):
            continue
        found.append(IdenticalUnits(path or "<model>", type(module).__name__, int(weight.shape[0])))
    return found


def _all_equal(rows: torch.Tensor, rtol: float) -> bool:
    if not bool(torch.isfinite(rows).all()):
        return False
    spread = float((rows - rows[:1]).abs().max())
    return spread <= rtol * max(float(rows.abs().max()), 1e-30)


def still_identical(model: torch.nn.Module, layers: list[IdenticalUnits],
                    rtol: float = 1e-6) -> list[IdenticalUnits]:
    """The ones among ``layers`` whose units are still all identical in ``model`` (after training)."""
    now = {u.layer for u in identical_unit_layers(model, rtol)}
    return [u for u in layers if u.layer in now]
