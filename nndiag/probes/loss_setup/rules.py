"""What the loss-setup probe knows about losses: which input each functional loss expects, the
output ranges of bounded ops, and the predicates on an op or a tensor that tell logits,
probabilities and log-probabilities apart (no judgement here: :mod:`.pairing` and
:mod:`.initial_loss` turn them into findings)."""

from __future__ import annotations

import math

import torch

from nndiag.provenance import PASSTHROUGH, POOLING, OpRecord

#: functional loss op -> what its input must be
LOSS_INPUT = {
    "cross_entropy": "logits",
    "binary_cross_entropy_with_logits": "logits",
    "multilabel_soft_margin_loss": "logits",
    "nll_loss": "log-probabilities",
    "kl_div": "log-probabilities",
    "binary_cross_entropy": "probabilities",
    "mse_loss": "values",
    "l1_loss": "values",
    "smooth_l1_loss": "values",
    "huber_loss": "values",
}
LOSS_NAMES = {
    "cross_entropy": "CrossEntropyLoss (F.cross_entropy)",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss (F.binary_cross_entropy_with_logits)",
    "multilabel_soft_margin_loss": "MultiLabelSoftMarginLoss",
    "nll_loss": "NLLLoss (F.nll_loss)",
    "kl_div": "KLDivLoss (F.kl_div)",
    "binary_cross_entropy": "BCELoss (F.binary_cross_entropy)",
    "mse_loss": "MSELoss (F.mse_loss)",
    "l1_loss": "L1Loss (F.l1_loss)",
    "smooth_l1_loss": "SmoothL1Loss (F.smooth_l1_loss)",
    "huber_loss": "HuberLoss (F.huber_loss)",
}
#: output range of an op, for regression targets
RANGES = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0), "softmax": (0.0, 1.0), "relu": (0.0, math.inf),
          "relu6": (0.0, 6.0), "hardsigmoid": (0.0, 1.0), "softplus": (0.0, math.inf),
          "exp": (0.0, math.inf)}
PROBABILITY_OPS = {"softmax", "sigmoid", "hardsigmoid"}
#: Passthrough ops that move the class axis: after one of them the class dim may well be 1.
AXIS_MOVES = {"permute", "transpose", "movedim", "swapaxes", "swapdims", "t"}
LOG_PROB_OPS = {"log_softmax", "logsigmoid"}


def loss_elements(op: str, x: torch.Tensor) -> int:
    """How many terms a 'sum' reduction adds up: one per sample (and position) for the class
    losses, one per element for the others."""
    if op in ("cross_entropy", "nll_loss") and x.dim() >= 2:
        return x.numel() // int(x.shape[1])
    if op in ("cross_entropy", "nll_loss"):
        return 1
    if op == "kl_div":
        return x.numel()
    return x.numel()


def last_op(chain: list[OpRecord]) -> OpRecord | None:
    """The op that made the loss input's values: the end of ``chain`` unless it is a passthrough."""
    if chain and chain[-1].op not in PASSTHROUGH:
        return chain[-1]
    return None


def deep_op(call) -> OpRecord | None:
    """The op behind the loss input, looking through pooling (mean, global average pool ...)."""
    chain = call.deep_chain or call.chain
    if chain and chain[-1].op not in PASSTHROUGH and chain[-1].op not in POOLING:
        return chain[-1]
    return last_op(call.chain)


def where_of(last: OpRecord | None) -> str:
    """The module path a finding about ``last`` names (``<model>`` when unknown)."""
    if last is None:
        return "<model>"
    return last.module_path or last.producer or "<model>"


def wrong_softmax_dim(last: OpRecord, x: torch.Tensor) -> bool:
    """True when the softmax feeding a class loss normalised another axis than the class axis."""
    src = last.input
    if isinstance(src, torch.Tensor) and tuple(src.shape) == tuple(x.shape):
        return last.dim != 1
    return last.dim_size != int(x.shape[1])


def is_log_prob(last: OpRecord | None) -> bool:
    """True when ``last`` makes log-probabilities (log_softmax, logsigmoid, log of something)."""
    if last is None:
        return False
    if last.op in LOG_PROB_OPS:
        return True
    if last.op == "log" and isinstance(last.input, torch.Tensor):
        return True  # log(...) of something: trust it is log of probabilities (values checked too)
    return False


def looks_like_probabilities(x: torch.Tensor) -> bool:
    """True when every row of ``x`` is non-negative and sums to 1 (over dimension 1)."""
    if x.dim() < 2 or not x.is_floating_point() or x.numel() == 0 or x.shape[1] < 2:
        return False
    x = x.float()
    if bool((x < 0).any()) or bool((x > 1).any()):
        return False
    return bool(torch.allclose(x.sum(1), torch.ones_like(x.sum(1)), atol=1e-4))


def looks_like_log_probabilities(x: torch.Tensor) -> bool:
    """True when ``x`` is non-positive and its rows' logsumexp is 0 (over dimension 1)."""
    if x.dim() < 2 or not x.is_floating_point() or x.numel() == 0:
        return False
    x = x.float()
    if bool((x > 1e-6).any()):
        return False
    lse = torch.logsumexp(x, dim=1)
    return bool(torch.allclose(lse, torch.zeros_like(lse), atol=1e-3))


def multi_hot_fraction(x: torch.Tensor, targets: list[torch.Tensor]) -> float:
    """The fraction of target rows with more than one label set (0 when the targets are not 0/1
    rows shaped like ``x``)."""
    rows = 0
    multi = 0
    for t in targets:
        if not t.is_floating_point() or t.dim() < 2 or t.shape[1:] != x.shape[1:]:
            return 0.0
        if not bool(((t == 0) | (t == 1)).all()):
            return 0.0
        s = t.float().movedim(1, -1).reshape(-1, t.shape[1]).sum(-1)
        rows += int(s.numel())
        multi += int((s > 1.5).sum())
    return multi / rows if rows else 0.0


def fmt_range(lo: float, hi: float) -> str:
    """``0 to 1``, ``0 to infinity``: an output range in words."""
    return f"{lo:g} to {'infinity' if hi == math.inf else format(hi, 'g')}"
