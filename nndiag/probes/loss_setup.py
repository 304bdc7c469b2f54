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

Thresholds and their sources: docs/probes/loss-setup.md.
"""

from __future__ import annotations

import inspect
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from nndiag.activation_trace import POOLING, PASSTHROUGH, OpRecord, OpRecorder, activation_trace
from nndiag.batches import batch_size
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.torchhooks import CallInfo, CallTracer, train_mode

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
_AXIS_MOVES = {"permute", "transpose", "movedim", "swapaxes", "swapdims", "t"}
#: Optimizers whose step does not grow with the loss scale (they divide by a running gradient
#: scale, or search along the direction): a summed loss is harmless with them.
SCALE_INVARIANT = {"Adam", "AdamW", "Adamax", "NAdam", "RAdam", "SparseAdam", "Adagrad", "Adadelta",
                   "RMSprop", "Rprop", "LBFGS", "Adafactor"}
LOG_PROB_OPS = {"log_softmax", "logsigmoid"}


@dataclass(frozen=True)
class LossSetupConfig:
    """Settings of the loss-setup probe."""

    samples: int = threshold(256, "issue 3 (the activation probes' sample count)",
                             "samples over which the initial loss and the targets are measured")
    init_loss_tolerance: float = threshold(
        0.75, "neural_net_checklist assert_balanced_classification_cross_entropy_loss_at_init "
        "(rel_tolerance=0.75); measured on the zoo: docs/probes/loss-setup.md (healthy up to 1.67x "
        "and 4.5x in issue 9, bugs 4.8-7.7x: it cannot decide, so it is a recorded fact)",
        "record a pass fact when the initial loss exceeds (1 + this) x its expected value")
    low_init_loss_fraction: float = threshold(
        0.25, "the lower side of the same 75% band (own choice: a warn, not a fail)",
        "warn when the initial loss is below this fraction of its expected value")
    summed_sgd_fail_step: float = threshold(
        1.0, "measured on the zoo: docs/probes/loss-setup.md (the summed-loss SGD bugs: 3.2 and "
        "6.4; healthy SGD recipes on a mean loss stay at or below 1.0, e.g. lr 0.1 momentum 0.9)",
        "with a loss summed over the batch and a plain SGD-type optimizer, fail when "
        "lr / (1 - momentum) x the batch scale reaches this")
    out_of_range_fail: float = threshold(
        0.01, "own choice: a target the output can never reach is a bug; 1% allows a few outliers",
        "fail when more than this fraction of regression targets lie outside the output's range")


@dataclass
class LossCall:
    """One traced call of a recognised loss function."""

    op: str
    params: dict[str, Any]
    value: float
    input: torch.Tensor
    target: Any
    chain: list[OpRecord] = field(default_factory=list)
    deep_chain: list[OpRecord] = field(default_factory=list)  # also through pooling (POOLING)
    per_element: float = float("nan")  # the loss per element, whatever the reduction


class LossSetupProbe(Probe):
    """Checks that the model's last op and the loss fit together, and the loss at initialisation."""

    id = "loss-setup"
    cost = 40  # the order of a check: cheapest first
    hint = ('CrossEntropyLoss and BCEWithLogitsLoss want raw logits: remove the softmax/sigmoid '
            'before them')
    description = "Do the model's outputs fit the loss (logits vs probabilities, ranges, ln C at init)?"
    Config = LossSetupConfig

    _wrong_dim = False

    def requires(self):
        """The shared activation pass over ``samples`` samples (the output op and the loss inputs)."""
        from nndiag.activation_trace import DEFAULT_LEVELS
        from nndiag.passes import ActivationPass

        return [ActivationPass(int(self.config.samples), DEFAULT_LEVELS)]

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        self._wrong_dim = False
        self._trained = ctx.subject.trained  # no "loss at initialisation" then
        try:
            trace = activation_trace(ctx, cfg.samples)
        except SubjectError:
            trace = None  # a model without a plain forward (a GAN's pair of nets): the loss decides
        if trace is not None:
            self._constant_softmax(out, trace)
        per_batch = self._traced_losses(ctx)
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
            last = _last(call.chain)
            calls_info.append({"loss": call.op, "input_op": last.name if last else None,
                               "input_where": (last.module_path or "<model>") if last else None,
                               "input_desc": last.describe() if last else None,
                               "input_shape": list(call.input.shape)})
            deep = _deep(call)
            if deep is not last:
                calls_info[-1]["input_op_through_pooling"] = deep.name if deep else None
            self._check_shapes(out, call, last)
            self._check_input(out, call, last, deep)
            same = [b[idx] for b in per_batch if idx < len(b) and b[idx].op == call.op]
            self._check_targets(out, call, deep if deep is not None else last, same)
        out.data["losses"] = calls_info
        self._check_reduction(out, per_batch)
        self._check_init_loss(out, per_batch)
        if self._eval_fallback:
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

    # ---- tracing the loss ----------------------------------------------------------------------
    def _traced_losses(self, ctx: ProbeContext) -> list[list[LossCall]]:
        """For each probe batch, the recognised loss calls (with the op chain on the first batch).

        The loss is measured as training computes it: in train mode, so that fresh BatchNorm
        layers normalise with the batch statistics (in eval mode their running statistics are
        still 0/1 and a ResNet's initial loss reads 7x ln 10 instead of 1.5x), with dropout
        modules off. A file with its own ``train_step`` is measured through it, on one fresh
        model and its first batch: the step decides what the loss is called on (a GAN builds its
        own real/fake labels), so ``loss_fn`` is never called on the batch's targets by nndiag.
        """
        bench = ctx.bench
        s = bench.subject
        own_step = s.train_step is not None
        batches = bench.probe_batches(self.config.samples)
        if own_step:
            batches = batches[:1]  # one real update of a fresh model: only the first loss is initial
        try:
            return self._trace_batches(bench, batches, own_step, train=True)
        except SubjectError:
            if own_step:
                raise
            # e.g. BatchNorm on a batch of one sample refuses train mode: measure in eval mode.
            self._eval_fallback = True
            return self._trace_batches(bench, batches, own_step, train=False)

    _eval_fallback = False

    def _trace_batches(self, bench, batches, own_step: bool, train: bool) -> list[list[LossCall]]:
        model = bench.fresh_model()
        tracer = CallTracer(model)
        recorder = OpRecorder(model)
        calls: list[LossCall] = []

        def on_call(info: CallInfo) -> None:
            recorder.on_call(info)
            if info.op in LOSS_INPUT:
                call = _loss_call(info)
                if call is not None:
                    if recorder.enabled:
                        call.chain = recorder.chain(call.input)
                        call.deep_chain = recorder.chain(call.input, through=POOLING)
                    calls.append(call)

        tracer.on_call = on_call
        result: list[list[LossCall]] = []
        self._user_losses: list[float] = []
        try:
            optimizer = bench.make_optimizer(model)
            self._optimizer_name = type(optimizer).__name__
            group = optimizer.param_groups[0] if optimizer.param_groups else {}
            lr, momentum = group.get("lr"), group.get("momentum", 0.0)
            self._step_size = (float(lr) / max(1.0 - float(momentum or 0.0), 1e-3)
                               if isinstance(lr, (int, float)) else None)
        except SubjectError:
            optimizer, self._optimizer_name, self._step_size = None, None, None
        with train_mode(model, train), _dropout_off(model, own_step), tracer.active():
            for i, batch in enumerate(batches):
                recorder.enabled = i == 0
                calls.clear()
                if own_step:
                    user = bench.train_one_step(model, optimizer or bench.make_optimizer(model),
                                                batch)
                else:
                    with torch.no_grad():
                        user = float(bench.compute_loss(model, batch).detach())
                with tracer.quiet():
                    self._user_losses.append(user)
                    for c in calls:  # keep what the checks need, detached, on the CPU
                        c.input = c.input.detach()
                        for r in c.chain + c.deep_chain:
                            r.output = None
                    result.append(list(calls))
                recorder.clear()
        return result

    # ---- checks ------------------------------------------------------------------------------
    def _constant_softmax(self, out: Outcome, trace) -> None:
        for site in trace.by_family("softmax"):
            if site.units == 1:
                value = "1.0" if site.op == "softmax" else "0.0 (log 1)"
                out.fail(f"{site.label}: {site.op} over a dimension of size 1 always returns {value}, "
                         "whatever its input, so the output is constant and nothing before it can "
                         "learn (bug 31880720: softmax on a single output unit, accuracy stuck at "
                         "0.5). For one output unit use sigmoid, or better no activation with "
                         "BCEWithLogitsLoss; for several classes check the dim argument.",
                         where=site.where, value=1, limit=1, metric="softmax_dim_size")

    def _check_shapes(self, out: Outcome, call: LossCall, last: OpRecord | None) -> None:
        """Shapes that fit without an error but pair the wrong numbers."""
        name = LOSS_NAMES[call.op]
        x, t = call.input, call.target
        moved = any(r.op in _AXIS_MOVES for r in call.chain)
        if (call.op in ("cross_entropy", "nll_loss") and x.dim() >= 3 and last is not None
                and last.op == "linear" and not moved):
            out.fail(f"{name} reads dimension 1 of its input {tuple(x.shape)} as the classes, but "
                     f"the input comes straight from {last.describe()}, whose outputs (the class "
                     f"scores) are in the last dimension: dimension 1 ({x.shape[1]}) is the "
                     "sequence, so every position is scored against the wrong axis (no shape error "
                     "when the two sizes are equal). Pass output.permute(0, 2, 1) (or flatten to "
                     "(N*T, C) with targets (N*T,)).", where=_where(last), value=int(x.shape[1]),
                     metric="class_dim")
            self._wrong_dim = True
            return
        if LOSS_INPUT.get(call.op) == "values" and isinstance(t, torch.Tensor) \
                and tuple(t.shape) != tuple(x.shape):
            try:
                shape = torch.broadcast_shapes(x.shape, t.shape)
            except RuntimeError:
                return
            if math.prod(shape) > max(x.numel(), t.numel()):
                out.fail(f"{name} gets predictions of shape {tuple(x.shape)} and targets of shape "
                         f"{tuple(t.shape)}: they broadcast to {tuple(shape)}, so every prediction "
                         "is compared with every target and the model can only learn their mean "
                         "(PyTorch only warns about it). Make the shapes equal, e.g. "
                         "output.squeeze(-1) or target.unsqueeze(-1).", where=_where(last),
                         value=math.prod(shape), limit=max(x.numel(), t.numel()),
                         metric="broadcast_elements")

    def _check_input(self, out: Outcome, call: LossCall, last: OpRecord | None,
                     deep: OpRecord | None = None) -> None:
        want = LOSS_INPUT[call.op]
        name = LOSS_NAMES[call.op]
        where = _where(last)
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
                return
        if (call.op in ("cross_entropy", "nll_loss") and last is not None and x.dim() >= 2
                and last.op in ("softmax", "log_softmax") and (last.dim_size or 0) > 1
                and _wrong_softmax_dim(last, x)):
            out.fail(f"{name} treats dimension 1 of its input ({x.shape[1]} classes) as the classes, "
                     f"but {got} normalises over dimension {last.dim} (size {last.dim_size}"
                     f"{', the batch' if last.dim == 0 else ''}): the scores of each class are "
                     "normalised across the wrong axis, so they are not a distribution over classes "
                     "(and with dim=0 each prediction depends on the other samples in the batch). "
                     f"Use dim=1 (or dim=-1 for (N, C) outputs).", where=where,
                     value=last.dim, limit=1, metric="softmax_dim")
            self._wrong_dim = True
            return
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
                         where=_where(deep), metric="input_op")
            elif call.op == "cross_entropy" and _looks_like_probabilities(x):
                out.fail(f"{name} expects raw logits, but every row of its input is non-negative and "
                         "sums to 1: these are already probabilities (a softmax computed by hand?). "
                         "Feed the scores before the softmax.", where=where, metric="input_op")
        elif want == "log-probabilities":
            if _is_log_prob(last) or _looks_like_log_probabilities(x):
                return
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

    def _check_targets(self, out: Outcome, call: LossCall, last: OpRecord | None,
                       same_calls: list[LossCall]) -> None:
        cfg = self.config
        name = LOSS_NAMES[call.op]
        where = _where(last)
        targets = [c.target for c in same_calls if isinstance(c.target, torch.Tensor)]
        if not targets:
            return
        x = call.input
        # multi-hot targets with softmax or cross-entropy
        softmaxed = last is not None and last.op == "softmax" and (last.dim_size or 0) > 1
        if softmaxed or call.op == "cross_entropy":
            frac = _multi_hot_fraction(x, targets)
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
               f"({_fmt_range(lo, hi)}), so the loss can never reach zero on them (bug 48221692: "
               "sigmoid output for targets above 1). Remove the bounded activation from the last "
               "layer (linear output for regression), or scale the targets into its range.")
        if outside > cfg.out_of_range_fail:
            out.fail(msg, where=where, value=outside, limit=cfg.out_of_range_fail,
                     metric="targets_out_of_range")
        else:
            out.warn(msg, where=where, value=outside, limit=cfg.out_of_range_fail,
                     metric="targets_out_of_range")

    def _single_call(self, per_batch: list[list[LossCall]]) -> LossCall | None:
        """The loss call when every batch makes exactly one call of the same loss, else None."""
        if not per_batch or any(len(b) != 1 for b in per_batch) \
                or len({b[0].op for b in per_batch}) != 1:
            return None  # several loss terms: their sum has no single expected value
        return per_batch[0][0]

    def _check_reduction(self, out: Outcome, per_batch: list[list[LossCall]]) -> None:
        """A loss summed over the batch: reduction='sum', or a per-sample loss summed or scaled by
        the batch size by hand. Its gradient is batch-size times a mean loss's, so plain SGD
        behaves as with a learning rate that many times larger; Adam-family optimizers divide the
        scale out."""
        call = self._single_call(per_batch)
        users = getattr(self, "_user_losses", [])
        if call is None or not users or not math.isfinite(call.per_element) \
                or call.per_element <= 0 or not math.isfinite(users[0]):
            return
        x = call.input
        n = int(x.shape[0]) if x.dim() else 1
        elements = _loss_elements(call.op, x)
        scale = users[0] / call.per_element
        out.metric("loss_scale", scale)
        if call.params.get("reduction") == "sum":
            how = "reduction='sum'"
        elif n >= 2 and abs(scale / n - 1) < 0.05:
            how = f"a per-sample loss summed (or multiplied by the batch size {n})"
        elif elements >= 2 and elements != n and abs(scale / elements - 1) < 0.05:
            how = f"a loss summed over all {elements} elements"
        else:
            return
        if abs(scale) < 1.5:
            return  # the sum is divided again later (e.g. by the batch size): a mean after all
        out.metric("summed_over_batch", 1)
        opt = getattr(self, "_optimizer_name", None)
        msg = (f"The loss is summed over the batch ({how}): it is {scale:.3g}x the mean loss per "
               f"{'sample' if elements == n else 'element'}, so its gradients are {scale:.3g}x "
               "larger too and the learning rate acts that many times larger. ")
        if opt in SCALE_INVARIANT:
            out.finding("pass", msg + f"{opt} divides the gradient scale out, so this only changes "
                        "the printed loss (the summed ELBO of a VAE is written this way).",
                        where="<loss>", value=scale, metric="loss_scale")
            return
        cfg = self.config
        step = getattr(self, "_step_size", None)
        effective = step * scale if step is not None else None
        if effective is not None:
            out.metric("effective_step_size", effective)
        fix = ("Use reduction='mean' (or divide by the batch size), or divide the learning rate "
               f"by {scale:.3g}.")
        if effective is not None and effective >= cfg.summed_sgd_fail_step:
            out.fail(msg + f"With {opt}, lr / (1 - momentum) = {step:.3g} becomes {effective:.3g} "
                     "on the per-sample gradient scale: steps that large throw the weights off "
                     "(a network tuned for a mean loss collapses to a constant output). " + fix,
                     where="<loss>", value=effective, limit=cfg.summed_sgd_fail_step,
                     metric="effective_step_size")
        else:
            out.warn(msg + f"With {opt or 'this optimizer'} the step size depends on it, and "
                     "changing the batch size changes the effective learning rate. " + fix,
                     where="<loss>", value=scale, limit=1.0, metric="loss_scale")

    def _check_init_loss(self, out: Outcome, per_batch: list[list[LossCall]]) -> None:
        cfg = self.config
        if self._wrong_dim:
            return  # the loss is off because of the softmax dimension, reported already
        call = self._single_call(per_batch)
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
            if call.op == "nll_loss" and not (_is_log_prob(_last(call.chain))
                                              or _looks_like_log_probabilities(x)):
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
        # per element whatever the reduction: a summed loss is reported by _check_reduction
        loss = sum(c.per_element * n for c, n in zip(finite, sizes)) / sum(sizes)
        out.metric("initial_loss", loss)
        if self._trained:
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


# ---- helpers ---------------------------------------------------------------------------------
def _loss_call(info: CallInfo) -> LossCall | None:
    try:
        bound = inspect.signature(info.func).bind_partial(*info.args, **info.kwargs)
        params = dict(bound.arguments)
    except (TypeError, ValueError):
        params = {}
    x = params.get("input", info.args[0] if info.args else None)
    target = params.get("target", info.args[1] if len(info.args) > 1 else None)
    if not isinstance(x, torch.Tensor) or not isinstance(info.output, torch.Tensor):
        return None
    value = float(info.output.detach().float().mean()) if info.output.numel() else float("nan")
    call = LossCall(info.op, params, value, x, target.detach() if isinstance(target, torch.Tensor)
                    else target)
    call.per_element = value
    if params.get("reduction") == "sum" and info.output.numel() == 1:
        call.per_element = value / max(_loss_elements(info.op, x), 1)
    return call


def _loss_elements(op: str, x: torch.Tensor) -> int:
    """How many terms a 'sum' reduction adds up: one per sample (and position) for the class
    losses, one per element for the others."""
    if op in ("cross_entropy", "nll_loss") and x.dim() >= 2:
        return x.numel() // int(x.shape[1])
    if op in ("cross_entropy", "nll_loss"):
        return 1
    if op == "kl_div":
        return x.numel()
    return x.numel()


@contextmanager
def _dropout_off(model: torch.nn.Module, keep: bool):
    """Dropout modules in eval mode for the measurement (unless ``keep``: the user's own step)."""
    from torch.nn.modules.dropout import _DropoutNd

    flags = [] if keep else [(m, m.training) for m in model.modules() if isinstance(m, _DropoutNd)]
    for m, _ in flags:
        m.training = False
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _last(chain: list[OpRecord]) -> OpRecord | None:
    if chain and chain[-1].op not in PASSTHROUGH:
        return chain[-1]
    return None


def _deep(call: LossCall) -> OpRecord | None:
    """The op behind the loss input, looking through pooling (mean, global average pool ...)."""
    chain = call.deep_chain or call.chain
    if chain and chain[-1].op not in PASSTHROUGH and chain[-1].op not in POOLING:
        return chain[-1]
    return _last(call.chain)


def _where(last: OpRecord | None) -> str:
    if last is None:
        return "<model>"
    return last.module_path or last.producer or "<model>"


def _wrong_softmax_dim(last: OpRecord, x: torch.Tensor) -> bool:
    """True when the softmax feeding a class loss normalised another axis than the class axis."""
    src = last.input
    if isinstance(src, torch.Tensor) and tuple(src.shape) == tuple(x.shape):
        return last.dim != 1
    return last.dim_size != int(x.shape[1])


def _is_log_prob(last: OpRecord | None) -> bool:
    if last is None:
        return False
    if last.op in LOG_PROB_OPS:
        return True
    if last.op == "log" and isinstance(last.input, torch.Tensor):
        return True  # log(...) of something: trust it is log of probabilities (values checked too)
    return False


def _looks_like_probabilities(x: torch.Tensor) -> bool:
    if x.dim() < 2 or not x.is_floating_point() or x.numel() == 0 or x.shape[1] < 2:
        return False
    x = x.float()
    if bool((x < 0).any()) or bool((x > 1).any()):
        return False
    return bool(torch.allclose(x.sum(1), torch.ones_like(x.sum(1)), atol=1e-4))


def _looks_like_log_probabilities(x: torch.Tensor) -> bool:
    if x.dim() < 2 or not x.is_floating_point() or x.numel() == 0:
        return False
    x = x.float()
    if bool((x > 1e-6).any()):
        return False
    lse = torch.logsumexp(x, dim=1)
    return bool(torch.allclose(lse, torch.zeros_like(lse), atol=1e-3))


def _multi_hot_fraction(x: torch.Tensor, targets: list[torch.Tensor]) -> float:
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


def _fmt_range(lo: float, hi: float) -> str:
    return f"{lo:g} to {'infinity' if hi == math.inf else format(hi, 'g')}"


@hookimpl
def nndiag_register_probes():
    """Register the loss-setup probe."""
    return [LossSetupProbe]
