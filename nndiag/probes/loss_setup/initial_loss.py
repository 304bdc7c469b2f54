"""The loss at initialisation: what an untrained model that predicts every class equally likely
scores (ln C, ln 2), and how far the measured initial loss is from it."""

from __future__ import annotations

import math
from typing import Any

from nndiag.probe import Outcome
from nndiag.probes.loss_setup.measure import LossCall, single_call
from nndiag.probes.loss_setup.rules import (
    LOSS_NAMES,
    is_log_prob,
    last_op,
    looks_like_log_probabilities,
)


def check_init_loss(out: Outcome, cfg: Any, per_batch: list[list[LossCall]], trained: bool) -> None:
    """The loss at initialisation against its expected value (ln C for cross-entropy over C
    classes, ln 2 for binary cross-entropy): far above is a recorded fact, far below a warning (a
    leak). With loaded weights (``trained``) only the loss is recorded."""
    call = single_call(per_batch)
    if call is None:
        return
    p = call.params
    if p.get("pos_weight") is not None:
        return
    x = call.input
    if call.op in ("cross_entropy", "nll_loss"):
        if x.dim() == 0:
            return
        classes = int(x.shape[1]) if x.dim() >= 2 else int(x.shape[0])
        if classes < 2:
            return
        if call.op == "nll_loss" and not (is_log_prob(last_op(call.chain))
                                          or looks_like_log_probabilities(x)):
            return
        expected, what = math.log(classes), f"ln {classes}"
    elif call.op in ("binary_cross_entropy_with_logits", "binary_cross_entropy"):
        if p.get("weight") is not None:
            return
        expected, what = math.log(2), "ln 2"
    else:
        return
    finite = [b[0] for b in per_batch if math.isfinite(b[0].per_element)]
    if not finite:
        return  # NaN/Inf loss: the nan probe says where it comes from
    sizes = [max(int(c.input.shape[0]) if c.input.dim() else 1, 1) for c in finite]
    # per element whatever the reduction: a summed loss is reported by summed.check_reduction
    loss = sum(c.per_element * n for c, n in zip(finite, sizes)) / sum(sizes)
    out.metric("initial_loss", loss)
    if trained:
        # Weights were loaded (--weights / nndiag_config["weights"]): the model is trained, so
        # a loss far below ln C is the point of training, not a leak. Nothing to compare.
        return
    out.metric("expected_initial_loss", expected)
    ratio = loss / expected
    out.metric("initial_loss_ratio", ratio)
    name = LOSS_NAMES[call.op].split(" (")[0]
    if ratio - 1.0 > cfg.init_loss_tolerance:
        # Measured (docs/probes/loss-setup.md): healthy programs with unscaled inputs start at
        # 4.5x and train; the bugs that start high are caught by their own checks. A fact.
        out.finding("pass", f"The {name} at initialisation is {loss:.3g}, {ratio:.1f}x the "
                    f"{expected:.3g} ({what}) of a model that predicts every class equally "
                    "likely: the initial predictions are confident (unscaled inputs or a large "
                    "last-layer init). Many such models still train, so this alone is not a "
                    "problem; if training is slow, normalise the inputs or initialise the last "
                    "layer small.", where="<loss>", value=loss,
                    limit=expected * (1 + cfg.init_loss_tolerance), metric="initial_loss")
    elif ratio < cfg.low_init_loss_fraction:
        out.warn(f"The {name} at initialisation is {loss:.3g}, only {ratio:.0%} of the "
                 f"{expected:.3g} ({what}) expected from an untrained model: before any training "
                 "the model already predicts the targets. Check for targets leaking into the "
                 "inputs, constant targets, or weights loaded by build_model().", where="<loss>",
                 value=loss, limit=expected * cfg.low_init_loss_fraction, metric="initial_loss")
