"""What counts as fitted, by the loss and the targets: scoring a classification batch ("every
sample classified right"), the lowest loss reachable (the floor) and the loss of the best constant
prediction (the loss's chance level)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

_REGRESSION_LOSSES = (torch.nn.MSELoss, torch.nn.L1Loss, torch.nn.SmoothL1Loss, torch.nn.HuberLoss)


@dataclass(frozen=True)
class Classification:
    """How to score a batch: ``correct(output)`` -> bool tensor over scored positions."""

    kind: str  # "multiclass", "one-hot", "binary", "multilabel"
    correct: Callable[[torch.Tensor], torch.Tensor]
    chance: float  # accuracy of always predicting the batch's most common class
    classes: int


def _is_logits_loss(loss_fn: Any) -> bool:
    if isinstance(loss_fn, torch.nn.BCEWithLogitsLoss):
        return True
    name = getattr(loss_fn, "__name__", "") or type(loss_fn).__name__
    return "logit" in name.lower()


def detect_classification(output: Any, targets: Any, loss_fn: Any) -> Classification | None:
    """The scoring rule for ``output``/``targets``, or None when this is not classification.

    * ``(N, C, ...)`` float output, integer targets ``(N, ...)`` in ``[0, C)`` (negative = ignored):
      argmax over dim 1;
    * ``(N, C)`` output with one-hot float targets: argmax of both;
    * ``(N,)``/``(N, 1)`` output with 0/1 targets of the same size: threshold 0 for a with-logits
      loss (or an output outside [0, 1] with a non-regression loss), else 0.5;
    * ``(N, K)`` output with 0/1 targets and a BCE loss: multi-label, every label must be right.
    """
    if not isinstance(output, torch.Tensor) or not isinstance(targets, torch.Tensor):
        return None
    if not output.is_floating_point() or output.dim() == 0 or targets.dim() == 0:
        return None
    out = output.detach()
    tgt = targets.detach()
    if not tgt.is_floating_point() and tgt.dtype != torch.bool:
        if out.dim() < 2 or out.shape[1] < 2 or tuple(tgt.shape) != (out.shape[0], *out.shape[2:]):
            return None
        valid = tgt >= 0
        c = out.shape[1]
        if not valid.any() or int(tgt[valid].max()) >= c:
            return None
        counts = torch.bincount(tgt[valid].flatten(), minlength=c)
        chance = float(counts.max()) / float(valid.sum())
        return Classification("multiclass", lambda o: (o.argmax(1) == tgt)[valid], chance, c)
    tgt = tgt.float()
    if not bool(((tgt == 0) | (tgt == 1)).all()):
        return None
    if out.shape == tgt.shape and out.dim() == 2 and out.shape[1] >= 2:
        if bool((tgt.sum(1) == 1).all()):
            labels = tgt.argmax(1)
            counts = torch.bincount(labels, minlength=out.shape[1])
            chance = float(counts.max()) / labels.numel()
            return Classification("one-hot", lambda o: o.argmax(1) == labels, chance, out.shape[1])
        if isinstance(loss_fn, (torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)) or "binary_cross" in (
                getattr(loss_fn, "__name__", "") or ""):
            cut = 0.0 if _is_logits_loss(loss_fn) else 0.5
            # multi-label: a sample is right when all its labels are; chance = most common label row
            rows = [tuple(r) for r in tgt.tolist()]
            chance = max(rows.count(r) for r in set(rows)) / len(rows)
            return Classification("multilabel", lambda o: ((o > cut).float() == tgt).all(1), chance, 2)
        return None
    if out.numel() != tgt.numel() or out.shape[0] != tgt.shape[0] or out.numel() != out.shape[0]:
        return None
    outside = bool(((out < 0) | (out > 1)).any())
    logits = _is_logits_loss(loss_fn) or (outside and not isinstance(loss_fn, _REGRESSION_LOSSES))
    cut = 0.0 if logits else 0.5
    flat = tgt.reshape(-1)
    pos = float(flat.mean())
    return Classification("binary", lambda o: (o.reshape(-1) > cut).float() == flat, max(pos, 1 - pos), 2)


def detect_floor(loss_fn: Any, output: Any, targets: Any) -> tuple[float, str]:
    """The lowest loss reachable on this batch and why (0 when nothing says otherwise)."""
    if isinstance(loss_fn, torch.nn.CrossEntropyLoss) and loss_fn.label_smoothing > 0 and isinstance(
            output, torch.Tensor) and output.dim() >= 2:
        eps, c = float(loss_fn.label_smoothing), output.shape[1]
        p_true, p_other = 1 - eps + eps / c, eps / c
        h = -p_true * math.log(p_true) - (c - 1) * p_other * math.log(p_other)
        return h, f"CrossEntropyLoss(label_smoothing={eps:g}) cannot go below its target entropy"
    if isinstance(loss_fn, (torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)) and isinstance(
            targets, torch.Tensor) and targets.is_floating_point() and loss_fn.weight is None:
        t = targets.detach().clamp(1e-12, 1 - 1e-12)
        soft = ((targets > 0) & (targets < 1)).any()
        if bool(soft) and loss_fn.reduction == "mean":
            h = float((-(t * t.log() + (1 - t) * (1 - t).log())).mean())
            return h, "BCE with soft targets cannot go below the targets' entropy"
    return 0.0, ""


def constant_baseline(loss_fn: Any, targets: Any) -> tuple[float, str] | None:
    """The loss of the best constant prediction (the loss's "chance level"), or None when unknown.

    MSELoss: the targets' variance (predict the batch mean); L1Loss: the mean absolute deviation from
    the median; CrossEntropyLoss (integer targets, no weights or smoothing): the entropy of the
    batch's class frequencies (predict the class prior); BCE with 0/1 targets: their binary entropy.
    """
    if not isinstance(targets, torch.Tensor) or targets.dim() == 0 or getattr(loss_fn, "reduction", "") != "mean":
        return None
    t = targets.detach()
    if isinstance(loss_fn, torch.nn.CrossEntropyLoss):
        if t.is_floating_point() or loss_fn.weight is not None or loss_fn.label_smoothing > 0:
            return None
        t = t[t != loss_fn.ignore_index]
        if t.numel() == 0 or int(t.min()) < 0:
            return None
        p = torch.bincount(t.flatten()).float()
        p = p[p > 0] / p.sum()
        return float(-(p * p.log()).sum()), "predicting the batch's class frequencies"
    if not t.is_floating_point():
        return None
    t = t.float()
    if isinstance(loss_fn, (torch.nn.BCELoss, torch.nn.BCEWithLogitsLoss)):
        if loss_fn.weight is not None or not bool(((t == 0) | (t == 1)).all()):
            return None
        m = float(t.mean())
        h = 0.0 if m in (0.0, 1.0) else -(m * math.log(m) + (1 - m) * math.log(1 - m))
        return h, "predicting the batch's share of positives"
    if isinstance(loss_fn, torch.nn.MSELoss):
        return float(((t - t.mean(0)) ** 2).mean()), "predicting the batch mean of the targets"
    if isinstance(loss_fn, torch.nn.L1Loss):
        return float((t - t.median(0).values).abs().mean()), "predicting the batch median of the targets"
    return None


_KNOWN_FLOOR_LOSSES = (torch.nn.MSELoss, torch.nn.L1Loss, torch.nn.SmoothL1Loss, torch.nn.HuberLoss,
                       torch.nn.CrossEntropyLoss, torch.nn.NLLLoss, torch.nn.BCELoss,
                       torch.nn.BCEWithLogitsLoss)
_KNOWN_FLOOR_FUNCTIONS = {"mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "cross_entropy",
                          "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits"}


def floor_is_known(loss_fn: Any) -> bool:
    """True for the torch losses whose lowest value nndiag knows (0, or the targets' entropy)."""
    if isinstance(loss_fn, _KNOWN_FLOOR_LOSSES):
        return True
    return getattr(loss_fn, "__name__", "") in _KNOWN_FLOOR_FUNCTIONS

