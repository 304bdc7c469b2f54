"""``data``: is the batch sane before any training happens.

* non-finite inputs or targets: fail;
* class-index targets out of range for a classification loss (the model's output width decides
  the range): fail, with the offending ids and the likely fix (torch's own message is a device-side
  assert or an ``IndexError`` deep in ``nll_loss``);
* probability targets outside [0, 1] for BCE-type losses: fail;
* all targets identical over the probe samples: warn (a label bug such as catalogue 59325381,
  where labels divided by 255 all became class 0);
* float inputs far from a usual scale: warn (catalogue 55328966: raw 0-255 pixels; 52800582,
  33969059: unscaled inputs in the thousands).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nndiag.batches import batch_size, iter_tensors, split_batch
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.loss_calls import record_loss_calls
from nndiag.probe import Outcome, Probe, ProbeContext, threshold

@dataclass(frozen=True)
class DataConfig:
    """Settings of the data probe."""

    samples: int = threshold(256, "same sample count as the dead-neurons probe (issue #3)",
                             "samples examined for identical targets and input scale")
    max_abs_mean: float = threshold(
        10.0, "nndiag: standardised inputs have mean ~0 and std ~1; raw 0-255 pixels (bug "
        "catalogue 55328966) have mean ~33", "warn when |mean| of float inputs exceeds this")
    max_std: float = threshold(
        10.0, "nndiag: raw 0-255 MNIST pixels have std ~78, inputs scaled to [0,1] ~0.3",
        "warn when the std of float inputs exceeds this")
    min_std: float = threshold(
        1e-4, "nndiag: inputs scaled twice (x/255/255) have std ~1e-3 for MNIST; a constant input "
        "has 0", "warn when the std of float inputs is below this")


def _floats(obj: Any) -> list[torch.Tensor]:
    return [t for t in iter_tensors(obj) if t.is_floating_point()]


class DataProbe(Probe):
    """Checks the probe batches: finite values, target ranges for the loss, input scale."""

    id = "data"
    cost = 20  # the order of a check: cheapest first
    hint = ('check the batch itself: NaNs in the data, inputs not normalised, class ids outside [0, '
            'num_classes) or all targets identical')
    description = "Is the batch sane: finite, inputs on a usual scale, targets valid for the loss."
    Config = DataConfig

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        batches = ctx.bench.probe_batches(cfg.samples)
        source = ctx.subject.data_source
        pairs = []
        for b in batches:
            try:
                pairs.append(split_batch(b, source))
            except SubjectError:
                if ctx.subject.training_step is None and ctx.subject.train_step is None:
                    raise
                out.skip("the batches are not (inputs, targets) pairs (the file's own "
                         "training_step/train_step unpacks them), so inputs and targets cannot be "
                         "told apart")
        inputs = [x for x, _ in pairs]
        targets = [y for _, y in pairs]
        n = sum(batch_size(b) for b in batches)
        out.metric("samples", n)
        out.metric("batches", len(batches))
        finite_in = self._finite(out, inputs, "inputs")
        finite_t = self._finite(out, targets, "targets")
        if finite_in:
            self._scale(out, inputs)
        if finite_t:
            self._targets(ctx, out, batches, targets)
        if not out.findings:
            out.summary = f"{n} samples: finite, inputs on a usual scale, targets valid"

    def _finite(self, out: Outcome, parts: list[Any], what: str) -> bool:
        bad = sum(int((~torch.isfinite(t)).sum()) for p in parts for t in _floats(p))
        if bad:
            out.fail(f"The batch {what} hold {bad} NaN/Inf value(s). Clean the data: look for missing "
                     "values and divisions by a zero standard deviation in the preprocessing.",
                     where=what, value=bad, limit=0, metric=f"nonfinite_{what}")
        return bad == 0

    def _scale(self, out: Outcome, inputs: list[Any]) -> None:
        cfg = self.config
        flat = [t.detach().float().reshape(-1) for p in inputs for t in _floats(p)]
        if not flat:
            return  # integer inputs (token ids): no scale to judge
        x = torch.cat(flat)
        mean, std = float(x.mean()), float(x.std()) if x.numel() > 1 else 0.0
        out.metric("input_mean", mean)
        out.metric("input_std", std)
        out.metric("input_min", float(x.min()))
        out.metric("input_max", float(x.max()))
        if abs(mean) > cfg.max_abs_mean or std > cfg.max_std:
            out.warn(f"The float inputs are far from a usual scale (mean {mean:.3g}, std {std:.3g}, "
                     f"range {float(x.min()):.3g}..{float(x.max()):.3g}). Unscaled inputs (e.g. "
                     "0-255 pixels) saturate activations and slow training: standardise them "
                     "(subtract the mean, divide by the std) or scale to [0, 1].", where="inputs",
                     value=std if std > cfg.max_std else abs(mean),
                     limit=cfg.max_std if std > cfg.max_std else cfg.max_abs_mean,
                     metric="input_std" if std > cfg.max_std else "input_abs_mean")
        elif std < cfg.min_std:
            out.warn(f"The float inputs are almost constant (std {std:.2g}). Were they scaled twice, "
                     "or is a feature column constant?", where="inputs", value=std,
                     limit=cfg.min_std, metric="input_std")

    def _targets(self, ctx: ProbeContext, out: Outcome, batches: list[Any], targets: list[Any]) -> None:
        tensors = [t for p in targets for t in iter_tensors(p)]
        if not tensors:
            return
        # What reaches the loss decides, not the model's output shape: the loss may reshape the
        # output (an LM's (seq*batch, vocab)), and a train_step may build its own labels (a GAN).
        calls = record_loss_calls(ctx.bench, batches[0])
        out.metric("loss_calls", len(calls))
        consumed = any(c.from_batch for c in calls) or (not calls and ctx.subject.loss_fn is not None
                                                          and ctx.subject.train_step is None
                                                          and ctx.subject.training_step is None)
        flat = torch.cat([t.detach().reshape(-1).float() for t in tensors])
        distinct = torch.unique(flat).numel()
        out.metric("distinct_targets", distinct)
        if flat.numel() > 1 and distinct == 1:
            if consumed:
                out.fail(f"All {flat.numel()} targets in the probe batches are identical "
                         f"({float(flat[0]):g}): the model can only learn a constant. Check the label "
                         "preprocessing (catalogue bug 59325381: labels divided by 255 all became 0) "
                         "and that the data is shuffled, not sorted by label.",
                         where="targets", value=distinct, limit=2, metric="distinct_targets")
            else:
                out.finding("pass", f"All {flat.numel()} targets in the batches are identical "
                            f"({float(flat[0]):g}), but the file's own step does not feed them to a "
                            "loss, so they are not judged.", where="targets", value=distinct,
                            metric="distinct_targets")
        for call in calls:
            if call.kind == "class-index" and not call.target.is_floating_point():
                self._class_ids(out, call)
            elif call.kind == "probability":
                self._probabilities(out, call)

    def _probabilities(self, out: Outcome, call) -> None:
        if call.target.numel() == 0 or not call.target.is_floating_point():
            return
        lo, hi = float(call.target.min()), float(call.target.max())
        if lo < 0 or hi > 1:
            out.fail(f"The targets reaching F.{call.op} range over {lo:g}..{hi:g}, but it needs "
                     "probabilities in [0, 1]. Map the labels to 0/1 (or use CrossEntropyLoss for "
                     "class ids).", where="targets", value=hi if hi > 1 else lo,
                     limit=1 if hi > 1 else 0, metric="target_range")

    def _class_ids(self, out: Outcome, call) -> None:
        classes = call.classes
        ids = call.target.reshape(-1)
        if call.ignore_index is not None:
            ids = ids[ids != call.ignore_index]
        if classes is None or ids.numel() == 0:
            return
        lo, hi = int(ids.min()), int(ids.max())
        out.metric("classes", classes)
        out.metric("target_min", lo)
        out.metric("target_max", hi)
        if lo < 0 or hi >= classes:
            bad = ids[(ids < 0) | (ids >= classes)]
            shown = ", ".join(str(int(v)) for v in torch.unique(bad)[:6])
            fix = (f"labels numbered 1..{classes}? subtract 1" if lo >= 1 and hi == classes
                   else f"give the last layer {hi + 1} outputs, or remap the labels")
            shape = "x".join(map(str, call.input.shape))
            out.fail(f"The targets reaching F.{call.op} hold class ids {shown} ({bad.numel()} of "
                     f"{ids.numel()} targets), but its input ({shape}) has {classes} classes, so "
                     f"valid ids are 0..{classes - 1}; the loss would crash or read out of bounds. "
                     f"Fix: {fix}.", where="targets",
                     value=hi if hi >= classes else lo, limit=classes - 1 if hi >= classes else 0,
                     metric="target_max" if hi >= classes else "target_min")


@hookimpl
def nndiag_register_probes():
    """Register the data probe."""
    return [DataProbe]
