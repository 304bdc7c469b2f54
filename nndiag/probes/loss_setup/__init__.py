"""``loss-setup``: do the model's outputs fit the loss?

The probe computes the loss of the probe batches on a fresh model (train mode, no grad) with every
torch call traced, recognises the loss by the functional call it makes (``F.cross_entropy``,
``F.nll_loss``, ``F.binary_cross_entropy[_with_logits]``, ``F.mse_loss`` ...: ``nn.CrossEntropyLoss``
and friends call these too, so modules, plain functions, ``loss_fn`` functions and
``training_step`` are all covered), and walks back from the loss's input through reshapes and
dropout to the op that made its values. Then it asks:

* probabilities fed to a loss that expects logits (softmax/sigmoid before ``CrossEntropyLoss`` or
  ``BCEWithLogitsLoss``), a ReLU on the logits;
* log-probabilities missing before ``NLLLoss``/``KLDivLoss``;
* softmax/log_softmax over a dimension of size 1 (constant output), cross-entropy over one class;
* a bounded output (sigmoid, tanh, softmax, ReLU) that cannot reach the targets of a regression loss;
* multi-hot (multi-label) targets with a softmax or cross-entropy;
* class scores on the wrong axis ((N, T, C) from a Linear into cross-entropy), regression shapes
  that broadcast, a loss summed over the batch (a fail with SGD when the step gets large);
* the loss at initialisation against its expected value, ln C for cross-entropy over C classes, ln 2
  for binary cross-entropy: far above it is a recorded fact (it does not separate healthy programs
  from bugs on the zoo), far below it a warning (a leak).

The loss is measured in train mode (BatchNorm normalising), with dropout modules off, through the
user's own ``train_step`` when the file has one.

Thresholds and their sources: docs/probes/loss-setup.md. The package by job: :mod:`.rules` (what
each loss expects, the predicates on ops and tensors), :mod:`.measure` (running the loss),
:mod:`.pairing` (output vs loss vs targets), :mod:`.summed` (a loss summed over the batch),
:mod:`.initial_loss` (the loss at initialisation against ln C).
"""

from __future__ import annotations

from dataclasses import dataclass

from nndiag.activation_trace import activation_trace
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.probes.loss_setup.class_ids import check_class_ids
from nndiag.probes.loss_setup.initial_loss import check_init_loss
from nndiag.probes.loss_setup.measure import LossCall, measure_losses
from nndiag.probes.loss_setup.pairing import (
    check_constant_softmax,
    check_input,
    check_shapes,
    check_targets,
)
from nndiag.probes.loss_setup.rules import LOSS_INPUT, LOSS_NAMES, deep_op, last_op
from nndiag.probes.loss_setup.summed import check_reduction
from nndiag.probes.loss_setup.target_signal import check_target_signal

__all__ = ["LOSS_INPUT", "LOSS_NAMES", "LossCall", "LossSetupConfig", "LossSetupProbe",
           "nndiag_register_probes"]


@dataclass(frozen=True)
class LossSetupConfig:
    """Settings of the loss-setup probe."""

    samples: int = threshold(256, "the activation probes' sample count",
                             "samples over which the initial loss and the targets are measured")
    init_loss_tolerance: float = threshold(
        0.75, "neural_net_checklist assert_balanced_classification_cross_entropy_loss_at_init "
        "(rel_tolerance=0.75); measured on the zoo: docs/probes/loss-setup.md (healthy up to 1.67x "
        "and 4.5x on a healthy 3-class model, bugs 4.8-7.7x: it cannot decide, so it is a recorded fact)",
        "record a pass fact when the initial loss exceeds (1 + this) x its expected value")
    low_init_loss_fraction: float = threshold(
        0.25, "the lower side of the same 75% band (own choice: a warn, not a fail)",
        "warn when the initial loss is below this fraction of its expected value")
    summed_sgd_fail_step: float = threshold(
        1.0, "measured on the zoo: docs/probes/loss-setup.md (the summed-loss SGD bugs: 3.2 and "
        "6.4; healthy SGD recipes on a mean loss stay at or below 1.0, e.g. lr 0.1 momentum 0.9)",
        "with a loss summed over the batch and a plain SGD-type optimizer, fail when "
        "lr / (1 - momentum) x the batch scale reaches this")
    label_signal_real: float = threshold(
        10.0, "measured on the zoo: docs/probes/loss-setup.md (healthy batch labels z 15.9-45.8)",
        "the batch's own labels count as belonging to their inputs when their 1-NN z-score "
        "reaches this (only then are the ids reaching the loss judged)")
    loss_target_signal_fail: float = threshold(
        3.0, "measured on the zoo: docs/probes/loss-setup.md (healthy ids z >= 15.9, the "
        "argmax-over-the-batch bug -0.39; the data probe's band)",
        "fail when the class ids reaching the loss have a 1-NN z-score below this while the "
        "batch's own labels reach label_signal_real")
    class_ids_same: float = threshold(
        0.5, "measured: docs/probes/loss-setup.md (class ids 0.84-0.94, integer quantities 0.14-0.54)",
        "integer regression targets count as class-like when at least this share of each "
        "sample's 5 nearest inputs hold exactly its value")
    class_ids_order_fail: float = threshold(
        1.0, "measured: docs/probes/loss-setup.md (quantities 0.03-0.84, digits' class ids 1.11-1.15)",
        "fail class-like integer regression targets when neighbours that differ differ by at "
        "least this fraction of the mean difference of any two samples (no numeric order)")
    out_of_range_fail: float = threshold(
        0.01, "own choice: a target the output can never reach is a bug; 1% allows a few outliers",
        "fail when more than this fraction of regression targets lie outside the output's range")


class LossSetupProbe(Probe):
    """Checks that the model's last op and the loss fit together, and the loss at initialisation."""

    id = "loss-setup"
    cost = 40  # the order of a check: cheapest first
    hint = ('CrossEntropyLoss and BCEWithLogitsLoss want raw logits: remove the softmax/sigmoid '
            'before them')
    description = "Do the model's outputs fit the loss (logits vs probabilities, ranges, ln C at init)?"
    Config = LossSetupConfig

    def requires(self):
        """The shared activation pass over ``samples`` samples (the output op and the loss inputs)."""
        from nndiag.activation_trace import DEFAULT_LEVELS
        from nndiag.passes import ActivationPass

        return [ActivationPass(int(self.config.samples), DEFAULT_LEVELS)]

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        """Trace the loss, then check its input op, shapes, targets, reduction and initial value."""
        cfg = self.config
        wrong_dim = False
        trained = ctx.subject.trained  # no "loss at initialisation" then
        try:
            trace = activation_trace(ctx, cfg.samples)
        except SubjectError:
            trace = None  # a model without a plain forward (a GAN's pair of nets): the loss decides
        if trace is not None:
            check_constant_softmax(out, trace)
        measured = measure_losses(ctx.bench, cfg.samples)
        per_batch = measured.per_batch
        first = per_batch[0] if per_batch else []
        if trace is not None and trace.output_op is not None:
            out.data["output_op"] = {"op": trace.output_op.name, "where": trace.output_op.module_path}
        if not first:
            if out.findings:
                out.summary = "softmax over a dimension of size 1; the loss itself was not recognised"
                return
            out.skip("the loss was not recognised: no call to a known loss function (F.cross_entropy, "
                     "F.nll_loss, F.binary_cross_entropy[_with_logits], F.mse_loss, F.l1_loss, "
                     "F.smooth_l1_loss, F.huber_loss, F.kl_div or their nn.*Loss modules) was seen "
                     "while computing it, so nndiag cannot tell what the outputs should look like.")
        calls_info = []
        for idx, call in enumerate(first):
            last = last_op(call.chain)
            calls_info.append({"loss": call.op, "input_op": last.name if last else None,
                               "input_where": (last.module_path or "<model>") if last else None,
                               "input_desc": last.describe() if last else None,
                               "input_shape": list(call.input.shape)})
            deep = deep_op(call)
            if deep is not last:
                calls_info[-1]["input_op_through_pooling"] = deep.name if deep else None
            wrong_dim |= check_shapes(out, call, last)
            wrong_dim |= check_input(out, call, last, deep)
            same = [b[idx] for b in per_batch if idx < len(b) and b[idx].op == call.op]
            check_targets(out, cfg, call, deep if deep is not None else last, same)
        out.data["losses"] = calls_info
        check_reduction(out, cfg, measured)
        check_target_signal(out, cfg, measured, ctx.subject.data_source)
        check_class_ids(out, cfg, measured, ctx.subject.data_source)
        if not wrong_dim:  # else the loss is off because of the softmax dimension, reported already
            check_init_loss(out, cfg, per_batch, trained)
        if measured.eval_fallback:
            out.finding("pass", "The loss was measured in eval mode: the model refused train mode on "
                        "these batches (e.g. BatchNorm on a batch of one sample).", where="<loss>")
        main = calls_info[0]
        fed = (main["input_desc"] if main["input_op"]
               else "an untraced tensor")
        init = out.metrics.get("initial_loss")
        exp = out.metrics.get("expected_initial_loss")
        out.summary = (f"{LOSS_NAMES[main['loss']].split(' (')[0]} fed by {fed}"
                       + (f"; initial loss {init:.3g} (expected {exp:.3g})"
                          if init is not None and exp is not None else ""))


@hookimpl
def nndiag_register_probes():
    """Register the loss-setup probe."""
    return [LossSetupProbe]
