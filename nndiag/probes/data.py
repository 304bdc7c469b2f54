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
from nndiag.label_signal import feature_structure, nearest_neighbour_signal
from nndiag.loss_calls import record_loss_calls
from nndiag.probe import Outcome, Probe, ProbeContext, threshold

#: feature_structure above which inputs count as real, structured data (label_signal.py: random
#: features measure 0.70-0.99, real tables and images 2.2-9.1).
_STRUCTURED = 1.5
#: Fewest samples for the label test to judge: at 100 samples and 10 balanced classes a real
#: signal of 1-NN accuracy 0.3 already sits 6.7 standard errors above chance.
_MIN_SIGNAL_SAMPLES = 100


@dataclass(frozen=True)
class DataConfig:
    """Settings of the data probe."""

    samples: int = threshold(256, "same sample count as the dead-neurons probe",
                             "samples examined for identical targets and input scale")
    max_abs_mean: float = threshold(
        10.0, "nndiag: standardised inputs have mean ~0 and std ~1; raw 0-255 pixels (bug "
        "catalogue 55328966) have mean ~33", "warn when |mean| of float inputs exceeds this")
    max_std: float = threshold(
        10.0, "nndiag: raw 0-255 MNIST pixels have std ~78, inputs scaled to [0,1] ~0.3",
        "warn when the std of float inputs exceeds this")
    min_label_signal_z: float = threshold(
        3.0, "measured on the zoo (docs/probes/data.md): healthy labelled data gives a 1-NN "
        "z-score of 13 to 46, labels shuffled apart from their inputs -0.7; under the null "
        "(labels unrelated to inputs) z >= 3 has probability ~0.1%",
        "fail when the labels' nearest-neighbour accuracy is less than this many standard errors "
        "above chance")
    min_feature_std_median: float = threshold(
        0.01, "measured on the zoo (docs/probes/data.md): healthy tabular inputs have a median "
        "per-feature std of 0.2 (pixels in [0, 1]) to ~1 (standardised); features scaled twice "
        "0.002-0.004", "fail when the median per-feature std of tabular inputs is below this")
    max_majority_fraction: float = threshold(
        0.7, "measured on the zoo (docs/probes/data.md): healthy classification batches with 3 or "
        "more classes have at most 47% in one class; a filter that kept mostly one digit 88%",
        "warn when one class holds more than this fraction of the targets (3 or more classes)")
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
            self._targets(ctx, out, batches, targets, inputs)
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
        self._feature_scales(out, inputs, cfg.min_feature_std_median)
        if abs(mean) > cfg.max_abs_mean or std > cfg.max_std:
            # A fact, not a warning: on the zoo, healthy raw count features (std 28) and buggy
            # unscaled inputs (std 58 to 2900) overlap, and whether the scale hurts shows
            # downstream, in saturation, gradients and overfit (docs/probes/data.md).
            out.finding("pass", f"The float inputs are far from a usual scale (mean {mean:.3g}, std "
                     f"{std:.3g}, range {float(x.min()):.3g}..{float(x.max()):.3g}). If training "
                     "struggles (see saturation, gradients, overfit), standardise them (subtract "
                     "the mean, divide by the std) or scale to [0, 1].", where="inputs",
                     value=std if std > cfg.max_std else abs(mean),
                     limit=cfg.max_std if std > cfg.max_std else cfg.max_abs_mean,
                     metric="input_std" if std > cfg.max_std else "input_abs_mean")
        elif std < cfg.min_std:
            out.warn(f"The float inputs are almost constant (std {std:.2g}). Were they scaled twice, "
                     "or is a feature column constant?", where="inputs", value=std,
                     limit=cfg.min_std, metric="input_std")

    @staticmethod
    def _feature_scales(out: Outcome, inputs: list[Any], limit: float) -> None:
        """Per-feature spread of tabular inputs ((N, F) float tensors): the whole tensor's std
        hides features scaled twice while one raw column dominates."""
        tables = [t for p in inputs for t in _floats(p)]
        if not tables or any(t.dim() != 2 for t in tables) or len({t.shape[1] for t in tables}) != 1:
            return
        x = torch.cat([t.detach().double() for t in tables])
        if x.shape[0] < 2 or x.shape[1] < 2:
            return
        std = x.std(0)
        varying = std[std > 0]
        out.metric("features", int(x.shape[1]))
        out.metric("constant_features", int((std == 0).sum()))
        if varying.numel():
            med = float(varying.median())
            out.metric("feature_std_min", float(varying.min()))
            out.metric("feature_std_median", med)
            out.metric("feature_std_max", float(varying.max()))
            out.metric("feature_std_spread", float(varying.max()) / max(float(varying.min()), 1e-300))
            small = float((varying < 0.05).double().mean())
            out.metric("small_std_fraction", small)
            if med < limit and small > 0.5:
                out.fail(f"{small:.0%} of the {varying.numel()} varying input features have a standard "
                         f"deviation below 0.05 (median {med:.2g}, limit {limit:g}): the features were "
                         "scaled twice or over the wrong axis (e.g. divided by 255 after "
                         "standardising, or normalised per sample), so the first layer sees almost "
                         "constant inputs and learns very slowly. Standardise each feature once "
                         "(StandardScaler, or (x - mean) / std over the samples).",
                         where="inputs", value=med, limit=limit, metric="feature_std_median")

    def _targets(self, ctx: ProbeContext, out: Outcome, batches: list[Any], targets: list[Any],
                 inputs: list[Any] | None = None) -> None:
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
        for call in calls[:1]:
            if call.kind == "regression" and call.target.is_floating_point() and call.target.numel() > 1:
                out.metric("target_std", float(call.target.double().std()))
                out.metric("target_abs_max", float(call.target.double().abs().max()))
            if call.kind == "class-index" and not call.target.is_floating_point() and call.from_batch:
                ids = call.target.reshape(-1)
                if call.ignore_index is not None:
                    ids = ids[ids != call.ignore_index]
                if ids.numel():
                    counts = torch.bincount(ids.clamp(min=0))
                    majority = float(counts.max()) / ids.numel()
                    out.metric("majority_fraction", majority)
                    limit = self.config.max_majority_fraction
                    classes = call.classes or 0
                    if classes >= 3 and majority > limit and distinct > 1:
                        out.warn(f"{majority:.0%} of the {ids.numel()} targets are class "
                                 f"{int(counts.argmax())}, of {classes} classes: the model can score "
                                 f"{majority:.0%} by always predicting it. If the data is not meant to "
                                 "be this skewed, check the filtering or sampling; if it is, weight "
                                 "the loss or resample.", where="targets", value=majority,
                                 limit=limit, metric="majority_fraction")
        self._label_signal(out, inputs, targets, calls, self.config.min_label_signal_z)
        for call in calls:
            if call.kind == "class-index" and not call.target.is_floating_point():
                self._class_ids(out, call)
            elif call.kind == "probability":
                self._probabilities(out, call)

    @staticmethod
    def _label_signal(out: Outcome, inputs, targets, calls, limit: float) -> None:
        """Measure whether class labels depend on their (float) inputs at all (label_signal.py)."""
        if not inputs or not calls or calls[0].kind != "class-index" or not calls[0].from_batch:
            return
        if not all(isinstance(x, torch.Tensor) and x.is_floating_point() for x in inputs):
            return
        if not all(isinstance(y, torch.Tensor) and y.dim() == 1 and not y.is_floating_point()
                   for y in targets):
            return
        try:
            x, y = torch.cat([t.detach() for t in inputs]), torch.cat([t.detach() for t in targets])
        except RuntimeError:
            return
        signal = nearest_neighbour_signal(x, y)
        if signal is None:
            return
        out.metric("label_nn_accuracy", signal.accuracy)
        out.metric("label_chance", signal.chance)
        out.metric("label_signal_z", signal.z)
        dependence = feature_structure(x)
        out.metric("feature_structure", dependence)
        if signal.z < limit and (signal.samples < _MIN_SIGNAL_SAMPLES or signal.chance > 0.6):
            # Too little power to tell: few samples, or one class so frequent that chance is
            # already high (a real signal then sits within a few standard errors of it).
            out.finding("pass", f"Too few samples ({signal.samples}) or classes too skewed (chance "
                        f"{signal.chance:.0%}) to test whether the labels depend on the inputs "
                        f"(1-NN accuracy {signal.accuracy:.0%}).", where="targets",
                        value=signal.z, limit=limit, metric="label_signal_z")
        elif signal.z < limit and (dependence is None or dependence < _STRUCTURED):
            out.finding("pass", f"The labels do not depend on the inputs (1-NN accuracy "
                        f"{signal.accuracy:.0%}, chance {signal.chance:.0%}), but the inputs look like "
                        "independent random features (synthetic test data), where that is expected.",
                        where="targets", value=signal.z, limit=limit, metric="label_signal_z")
        elif signal.z < limit:
            out.fail(f"The labels do not depend on the inputs: a nearest-neighbour classifier on the "
                     f"raw inputs gets {signal.accuracy:.0%} of {signal.samples} labels right, what "
                     f"chance gives ({signal.chance:.0%}; z = {signal.z:.1f}, limit {limit:g}). The "
                     "labels were probably separated from their inputs: shuffled with another "
                     "permutation, read from the wrong column, or joined on the wrong key. A "
                     "network can still memorise one batch, so the training probes cannot see this.",
                     where="targets", value=signal.z, limit=limit, metric="label_signal_z")

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
