"""Class ids made inside the loss computation that no longer belong to their samples.

A ``training_step`` that turns the batch's labels into class ids on the way to the loss (one-hot
rows decoded with ``argmax``, a remapping, a lookup) can destroy them without any error: with
one-hot rows decoded over ``dim=0`` (the batch) instead of ``dim=1``, a batch of 10 samples and
10 classes gives 10 ids of the right shape and range that name, for each class, the first sample
holding it. The network still lowers the loss a little, on noise. The data probe judges the
batch's own labels; what reaches the loss is only seen here.

The measurement is the data probe's (:mod:`nndiag.label_signal`): the leave-one-out
1-nearest-neighbour accuracy of labels on the raw inputs against chance, as a z-score. It is made
twice over the probe batches: on the batch's own labels (class ids, or one-hot/probability rows
read by their largest entry) and on the ids the loss got. Real labels sit far above chance; ids
that lost their samples sit at chance. Any relabelling that keeps each sample's class (``y - 1``,
a lookup table) keeps the 1-NN accuracy, so only ids cut from their samples fall.
"""

from __future__ import annotations

from typing import Any

import torch

from nndiag.batches import split_batch
from nndiag.errors import SubjectError
from nndiag.label_signal import nearest_neighbour_signal
from nndiag.probe import Outcome
from nndiag.probes.loss_setup.measure import LossMeasurement

#: class losses whose target is one class id per sample
_ID_LOSSES = {"cross_entropy", "nll_loss"}


def batch_labels(targets: Any, n: int) -> torch.Tensor | None:
    """The batch's own labels as ``n`` class ids: integer ids, or the largest entry of one-hot /
    probability rows (N, C); None for anything else (regression values, sequences, dicts)."""
    if not isinstance(targets, torch.Tensor) or targets.dim() == 0 or int(targets.shape[0]) != n:
        return None
    if targets.dim() == 1 and not targets.is_floating_point() and targets.dtype != torch.bool:
        return targets.long()
    if targets.dim() == 2 and targets.is_floating_point() and targets.shape[1] >= 2:
        t = targets.float()
        if bool((t >= 0).all()) and bool(torch.allclose(t.sum(1), torch.ones(n), atol=1e-3)):
            return t.argmax(1)
    return None


def collect(measured: LossMeasurement, source: str) -> tuple[torch.Tensor, torch.Tensor,
                                                             torch.Tensor] | None:
    """(inputs, batch labels, loss ids) over the probe batches, or None when the test does not
    apply: not a class-id loss on every batch, non-float inputs, ids not one per sample, or
    batch labels that cannot be read as class ids."""
    xs, ys, ts = [], [], []
    for batch, calls in zip(measured.batches, measured.per_batch):
        calls = [c for c in calls if c.op in _ID_LOSSES]
        if len(calls) != 1:
            return None
        try:
            inputs, targets = split_batch(batch, source)
        except SubjectError:
            return None
        ids = calls[0].target
        if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() \
                or inputs.dim() < 2 or not isinstance(ids, torch.Tensor) or ids.dim() != 1 \
                or ids.is_floating_point() or calls[0].input.dim() != 2:
            return None
        n = int(inputs.shape[0])
        labels = batch_labels(targets, n)
        if labels is None or int(ids.shape[0]) != n:
            return None
        xs.append(inputs.detach().cpu())
        ys.append(labels.detach().cpu())
        ts.append(ids.detach().cpu().long())
    if not xs:
        return None
    return torch.cat(xs), torch.cat(ys), torch.cat(ts)


def check_target_signal(out: Outcome, cfg: Any, measured: LossMeasurement, source: str) -> None:
    """Fail when the batch's labels belong to their inputs but the class ids the loss gets do
    not (1-NN z-scores, bands in docs/probes/loss-setup.md)."""
    got = collect(measured, source)
    if got is None:
        return
    x, y, t = got
    own = nearest_neighbour_signal(x, y)
    fed = own if torch.equal(y, t) else nearest_neighbour_signal(x, t)
    if own is None or fed is None:
        return
    # recorded whenever it applies (the healthy distribution); judged only when the ids differ
    # from the batch's labels: labels detached at the source are the data probe's finding
    out.metric("batch_label_signal_z", own.z)
    out.metric("loss_target_signal_z", fed.z)
    if fed is own or own.z < cfg.label_signal_real or fed.chance > 0.6 or fed.samples < 100:
        return  # the batch's labels carry no clear signal, or too little power: cannot tell
    if fed.z < cfg.loss_target_signal_fail:
        out.fail(f"The class ids that reach the loss do not belong to their samples: a "
                 f"nearest-neighbour classifier on the raw inputs gets {own.accuracy:.0%} of the "
                 f"batch's own labels right (chance {own.chance:.0%}), but only {fed.accuracy:.0%} "
                 f"of the ids the loss is given (chance {fed.chance:.0%}; z = {fed.z:.1f}, limit "
                 f"{cfg.loss_target_signal_fail:g}), over {fed.samples} samples. The labels are "
                 "turned into ids the wrong way between the batch and the loss, e.g. one-hot "
                 "rows decoded with argmax(dim=0), over the batch, instead of argmax(dim=1); "
                 "the model then learns noise. Decode each sample's own row (dim=1).",
                 where="<loss>", value=fed.z, limit=cfg.loss_target_signal_fail,
                 metric="loss_target_signal_z")
