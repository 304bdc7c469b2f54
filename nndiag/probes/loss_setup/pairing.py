"""Does the model's output fit the loss: the op feeding it (logits, probabilities,
log-probabilities), the shapes it pairs, the targets against the output's range, and softmax over
a dimension of size 1. Each check adds its findings to the probe's outcome."""

from __future__ import annotations

import math
from typing import Any

import torch

from nndiag.probe import Outcome
from nndiag.probes.loss_setup.measure import LossCall
from nndiag.probes.loss_setup.rules import (
    AXIS_MOVES,
    LOSS_INPUT,
    LOSS_NAMES,
    PROBABILITY_OPS,
    RANGES,
    fmt_range,
    is_log_prob,
    looks_like_log_probabilities,
    looks_like_probabilities,
    multi_hot_fraction,
    where_of,
    wrong_softmax_dim,
)
from nndiag.provenance import POOLING, OpRecord


def check_constant_softmax(out: Outcome, trace: Any) -> None:
    """Fail every softmax/log_softmax site of the activation pass over a dimension of size 1."""
    for site in trace.by_family("softmax"):
        if site.units == 1:
            value = "1.0" if site.op == "softmax" else "0.0 (log 1)"
            out.fail(f"{site.label}: {site.op} over a dimension of size 1 always returns {value}, "
                     "whatever its input, so the output is constant and nothing before it can "
                     "learn (bug 31880720: softmax on a single output unit, accuracy stuck at "
                     "0.5). For one output unit use sigmoid, or better no activation with "
                     "BCEWithLogitsLoss; for several classes check the dim argument.",
                     where=site.where, value=1, limit=1, metric="softmax_dim_size")


def check_shapes(out: Outcome, call: LossCall, last: OpRecord | None) -> bool:
    """Shapes that fit without an error but pair the wrong numbers. True when the class scores
    are on the wrong axis (the initial loss then means nothing)."""
    name = LOSS_NAMES[call.op]
    x, t = call.input, call.target
    moved = any(r.op in AXIS_MOVES for r in call.chain)
    if (call.op in ("cross_entropy", "nll_loss") and x.dim() >= 3 and last is not None
            and last.op == "linear" and not moved):
        out.fail(f"{name} reads dimension 1 of its input {tuple(x.shape)} as the classes, but "
                 f"the input comes straight from {last.describe()}, whose outputs (the class "
                 f"scores) are in the last dimension: dimension 1 ({x.shape[1]}) is the "
                 "sequence, so every position is scored against the wrong axis (no shape error "
                 "when the two sizes are equal). Pass output.permute(0, 2, 1) (or flatten to "
                 "(N*T, C) with targets (N*T,)).", where=where_of(last), value=int(x.shape[1]),
                 metric="class_dim")
        return True
    if LOSS_INPUT.get(call.op) == "values" and isinstance(t, torch.Tensor) \
            and tuple(t.shape) != tuple(x.shape):
        try:
            shape = torch.broadcast_shapes(x.shape, t.shape)
        except RuntimeError:
            return False
        if math.prod(shape) > max(x.numel(), t.numel()):
            out.fail(f"{name} gets predictions of shape {tuple(x.shape)} and targets of shape "
                     f"{tuple(t.shape)}: they broadcast to {tuple(shape)}, so every prediction "
                     "is compared with every target and the model can only learn their mean "
                     "(PyTorch only warns about it). Make the shapes equal, e.g. "
                     "output.squeeze(-1) or target.unsqueeze(-1).", where=where_of(last),
                     value=math.prod(shape), limit=max(x.numel(), t.numel()),
                     metric="broadcast_elements")
    return False


def check_input(out: Outcome, call: LossCall, last: OpRecord | None,
                deep: OpRecord | None = None) -> bool:
    """The op feeding the loss against what the loss expects (logits, log-probabilities): a
    softmax before cross-entropy, a ReLU on the logits, a softmax over the wrong dimension. True
    when the softmax normalised the wrong dimension (the initial loss then means nothing)."""
    want = LOSS_INPUT[call.op]
    name = LOSS_NAMES[call.op]
    where = where_of(last)
    got = last.describe() if last is not None else "a tensor nndiag did not see being made"
    x = call.input
    if call.op == "cross_entropy" and x.dim() >= 1:
        classes = int(x.shape[1]) if x.dim() >= 2 else int(x.shape[0])
        if classes == 1:
            out.fail(f"{name} gets a single class score per sample (input shape "
                     f"{tuple(x.shape)}): cross-entropy over one class is always 0, so nothing is "
                     "learned. For a yes/no target use one output with BCEWithLogitsLoss, or two "
                     "outputs with CrossEntropyLoss.", where=where, value=1, limit=2,
                     metric="classes")
            return False
    if (call.op in ("cross_entropy", "nll_loss") and last is not None and x.dim() >= 2
            and last.op in ("softmax", "log_softmax") and (last.dim_size or 0) > 1
            and wrong_softmax_dim(last, x)):
        out.fail(f"{name} treats dimension 1 of its input ({x.shape[1]} classes) as the classes, "
                 f"but {got} normalises over dimension {last.dim} (size {last.dim_size}"
                 f"{', the batch' if last.dim == 0 else ''}): the scores of each class are "
                 "normalised across the wrong axis, so they are not a distribution over classes "
                 "(and with dim=0 each prediction depends on the other samples in the batch). "
                 f"Use dim=1 (or dim=-1 for (N, C) outputs).", where=where,
                 value=last.dim, limit=1, metric="softmax_dim")
        return True
    if want == "logits":
        if last is not None and last.op in PROBABILITY_OPS and not (
                last.op == "softmax" and last.dim_size == 1):
            undo = "log_softmax" if call.op == "cross_entropy" else "sigmoid"
            out.fail(f"{name} expects raw logits and applies {undo} itself, but its input comes "
                     f"from {got}: the scores are squashed twice, so the loss cannot go much below "
                     "its starting value and gradients shrink (one of the most reported PyTorch "
                     f"bugs). Remove the {last.op} from the forward pass (apply it only when "
                     "you need probabilities for prediction), or use the loss for "
                     f"{'log-probabilities (NLLLoss after log_softmax)' if call.op == 'cross_entropy' else 'probabilities (BCELoss)'}.",
                     where=where, metric="input_op")
        elif last is not None and last.op in ("relu", "relu6"):
            out.fail(f"{name} expects logits of any sign, but its input comes from {got}: "
                     "negative logits are clipped to 0 with no gradient, so an output unit that "
                     "goes negative stops learning (bug 47352366: ReLU on the output layer, loss "
                     "NaN, accuracy 0.06). Remove the ReLU after the last layer.",
                     where=where, metric="input_op")
        elif (deep is not None and deep is not last and deep.op in ("relu", "relu6")
              and last is not None and last.op in POOLING):
            # Measured (docs/probes/loss-setup.md): torchvision's SqueezeNet ends this way by
            # design and trains, so behind a pool this is a warning, not a failure.
            out.warn(f"{name} expects logits of any sign, but its input is {got} of "
                     f"{deep.describe()}: every class score is an average of ReLU outputs, so "
                     "it can never go below 0, and a class whose map is negative everywhere "
                     "gets no gradient to rise (bug 47352366: ReLU on the output layer). "
                     "Remove the ReLU after the last convolution (pool the raw class maps).",
                     where=where_of(deep), metric="input_op")
        elif call.op == "cross_entropy" and looks_like_probabilities(x):
            out.fail(f"{name} expects raw logits, but every row of its input is non-negative and "
                     "sums to 1: these are already probabilities (a softmax computed by hand?). "
                     "Feed the scores before the softmax.", where=where, metric="input_op")
    elif want == "log-probabilities":
        if is_log_prob(last) or looks_like_log_probabilities(x):
            return False
        if last is not None and last.op in PROBABILITY_OPS:
            out.fail(f"{name} expects log-probabilities, but its input comes from {got}: on "
                     "probabilities it computes -p instead of -log p, which barely trains. Use "
                     "log_softmax instead of softmax (or CrossEntropyLoss on the raw logits).",
                     where=where, metric="input_op")
        else:
            out.fail(f"{name} expects log-probabilities (log_softmax output), but its input "
                     f"comes from {got} and is not normalised: the loss is just minus the score "
                     "and is unbounded below. Add log_softmax at the end of forward, or use "
                     "CrossEntropyLoss, which applies it for you.", where=where, metric="input_op")
    return False


def check_targets(out: Outcome, cfg: Any, call: LossCall, last: OpRecord | None,
                  same_calls: list[LossCall]) -> None:
    """The targets against the output: multi-hot targets under a softmax or cross-entropy,
    regression targets outside a bounded output's range."""
    name = LOSS_NAMES[call.op]
    where = where_of(last)
    targets = [c.target for c in same_calls if isinstance(c.target, torch.Tensor)]
    if not targets:
        return
    x = call.input
    # multi-hot targets with softmax or cross-entropy
    softmaxed = last is not None and last.op == "softmax" and (last.dim_size or 0) > 1
    if softmaxed or call.op == "cross_entropy":
        frac = multi_hot_fraction(x, targets)
        if frac > 0:
            what = f"{last.describe()}" if softmaxed else name
            out.fail(f"{frac:.0%} of the target rows have more than one label set (multi-label "
                     f"targets), but {what} makes the classes compete for one unit of "
                     "probability, so two labels can never both be predicted (bug 38648195: "
                     "softmax on multi-label targets). Use one logit per label with "
                     "BCEWithLogitsLoss (sigmoid per label at prediction time).",
                     where=where, value=frac, limit=0.0, metric="multi_hot_fraction")
            return
    if LOSS_INPUT[call.op] != "values" or last is None or last.op not in RANGES:
        return
    lo, hi = RANGES[last.op]
    if last.op == "softmax" and last.dim_size == 1:
        return  # reported as a constant output already
    t = torch.cat([tt.detach().float().reshape(-1).cpu() for tt in targets])
    if t.numel() == 0:
        return
    outside = ((t > hi) | (t < lo)).float().mean().item()
    out.metric("targets_out_of_range", outside)
    if outside == 0:
        return
    msg = (f"{outside:.1%} of the {name} targets (range {t.min().item():.3g} to "
           f"{t.max().item():.3g}) lie outside what {last.describe()} can output "
           f"({fmt_range(lo, hi)}), so the loss can never reach zero on them (bug 48221692: "
           "sigmoid output for targets above 1). Remove the bounded activation from the last "
           "layer (linear output for regression), or scale the targets into its range.")
    if outside > cfg.out_of_range_fail:
        out.fail(msg, where=where, value=outside, limit=cfg.out_of_range_fail,
                 metric="targets_out_of_range")
    else:
        out.warn(msg, where=where, value=outside, limit=cfg.out_of_range_fail,
                 metric="targets_out_of_range")
