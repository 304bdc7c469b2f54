"""Class ids fed to a regression loss as numbers: a classification posed as a regression.

``y.float()`` on class ids and one output unit with ``MSELoss`` trains without an error and the
loss falls, but the model is asked to put digit 7 between 6 and 8, and an image that looks like
a 1 or a 7 is pulled to 4: rounded predictions are mostly wrong. Integer targets alone do not
tell it from a healthy regression on counts, ratings or ages. What does is whether the numbers
are *ordered* in input space, measured with no training:

* ``same``: the share of each sample's ``k`` nearest neighbours (raw inputs, each feature
  standardised) that hold exactly its value. Class ids that the inputs separate score high
  (digits 0.82-0.86); a quantity with many values or noise scores low.
* ``order``: among the neighbour pairs whose values differ, the mean |difference| over that of
  all pairs of samples whose values differ. A quantity changes little between neighbours (below
  1: measured 0.46-0.84 on integer-valued real quantities, 0.03-0.73 on the zoo's regressions);
  ids with no numeric meaning differ between neighbours as much as between any two samples, or
  more (digits 1.15-1.17: the look-alike digits 1/7, 3/8, 4/9 are far apart as numbers).

The thresholds and the measurement: docs/probes/loss-setup.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from nndiag.batches import split_batch
from nndiag.errors import SubjectError
from nndiag.probe import Outcome
from nndiag.probes.loss_setup.measure import LossMeasurement

#: regression losses whose target may be class ids turned into numbers
_REGRESSION = {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss"}
NEIGHBOURS = 5
MAX_VALUES = 50  # more distinct integers than this read as a count, not as class ids
MIN_PAIRS = 50  # fewest neighbour pairs with different values for ``order`` to mean something


@dataclass(frozen=True)
class ValueOrder:
    """How the target values sit among the inputs' nearest neighbours."""

    samples: int
    values: int  # distinct target values
    same: float  # share of neighbours holding the sample's own value
    order: float  # mean |dy| of differing neighbour pairs / mean |dy| of differing pairs
    pairs: int  # neighbour pairs with different values


def value_order(inputs: torch.Tensor, values: torch.Tensor, k: int = NEIGHBOURS) -> ValueOrder | None:
    """:class:`ValueOrder` of ``values`` (N,) on ``inputs`` (N, ...); None when fewer than
    ``k + 1`` samples or every value is the same."""
    n = int(values.shape[0])
    if n <= k or inputs.shape[0] != n:
        return None
    y = values.detach().reshape(n).double()
    if int(y.unique().numel()) < 2:
        return None
    x = inputs.detach().reshape(n, -1).double()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)  # no column dominates the distance
    d = torch.cdist(x, x)
    d.fill_diagonal_(math.inf)
    near = d.topk(k, largest=False).indices
    dy = (y[near] - y[:, None]).abs()
    differ = dy[dy > 0]
    every = (y[:, None] - y[None, :]).abs()
    every = every[every > 0]
    order = float(differ.mean() / every.mean()) if differ.numel() else 0.0
    return ValueOrder(n, int(y.unique().numel()), float((dy == 0).double().mean()), order,
                      int(differ.numel()))


def collect(measured: LossMeasurement, source: str
            ) -> tuple[torch.Tensor, torch.Tensor, bool] | None:
    """(inputs, targets, integer ids?) over the probe batches when one regression loss gets one
    number per sample from float inputs; the flag says the targets are integers with 3 to
    :data:`MAX_VALUES` distinct values (the only ones judged). None when the test does not apply."""
    xs, ys = [], []
    for batch, calls in zip(measured.batches, measured.per_batch):
        if len(calls) != 1 or calls[0].op not in _REGRESSION:
            return None
        call = calls[0]
        try:
            inputs, _ = split_batch(batch, source)
        except SubjectError:
            return None
        t = call.target
        if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() \
                or not isinstance(t, torch.Tensor) or inputs.dim() < 2:
            return None
        n = int(inputs.shape[0])
        if int(call.input.numel()) != n or int(t.numel()) != n:
            return None  # one number per sample (a 1-unit regression head) only
        xs.append(inputs.detach().cpu())
        ys.append(t.detach().cpu().reshape(n).double())
    if not xs:
        return None
    y = torch.cat(ys)
    ids = bool((y == y.round()).all()) and 3 <= int(y.unique().numel()) <= MAX_VALUES
    return torch.cat(xs), y, ids


def check_class_ids(out: Outcome, cfg: Any, measured: LossMeasurement, source: str) -> None:
    """Fail a regression loss on integer targets that the inputs separate as classes
    (``same`` at least ``class_ids_same``) but that are not ordered among them (``order`` at
    least ``class_ids_order_fail``): class ids used as numbers."""
    got = collect(measured, source)
    if got is None:
        return
    x, y, ids = got
    m = value_order(x, y)
    if m is None:
        return
    # recorded for every one-number regression (the healthy distribution); judged on ids only
    out.metric("target_values_same_share", m.same)
    out.metric("target_values_order", m.order)
    if not ids or m.pairs < MIN_PAIRS or m.same < cfg.class_ids_same or m.order < cfg.class_ids_order_fail:
        return
    out.fail(f"The regression targets are {m.values} integer values that behave like class ids: "
             f"{m.same:.0%} of each sample's {NEIGHBOURS} nearest inputs hold exactly its value, but "
             f"where neighbours differ they differ by {m.order:.2f}x as much as any two samples "
             f"(limit {cfg.class_ids_order_fail:g}): the numbers have no order among the inputs. "
             "With one output and a regression loss the model must place each class between "
             "its numeric neighbours and predicts the average of look-alike classes, so rounded "
             "predictions are mostly wrong. Treat them as classes: one output per class with "
             "CrossEntropyLoss on the integer ids.", where="<loss>", value=m.order,
             limit=cfg.class_ids_order_fail, metric="target_values_order")
