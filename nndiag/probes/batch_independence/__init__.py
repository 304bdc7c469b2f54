"""``batch-independence``: does each sample's output depend on its own input only?

In eval mode, sample ``i``'s input is perturbed and every module output and every torch function
output is compared with the unperturbed run (:class:`~nndiag.torchhooks.CallTracer`). Samples mix
where a tensor's changes spread over more than one slice of its batch dimension; the first such
operation (in execution order) and the first such module are reported. The model's output is held
to the strict rule: only sample ``i``'s slice may change. A gradient check follows (as in
neural_net_checklist): backpropagate sample ``i``'s output only and require zero input gradient for
every other sample (float inputs only; token ids have no gradient).

The batch dimension of an intermediate tensor is not assumed to be 0 (an RNN with
``batch_first=False`` works on ``(T, N, F)``): any dimension of size ``n`` (the number of samples)
may be it, and ``n`` is chosen to differ from the inputs' other sizes. A dimension of size ``n*m``
counts when the changes stay in one block of ``m`` (``reshape(N*T, F)``) or one residue class
(``reshape(T*N, F)``). Tensors with no such dimension (a reduction) are not judged; the first
operation after them that mixes is. Details and measurements: docs/probes/batch-independence.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nndiag.batches import iter_tensors, map_tensors
from nndiag.errors import SubjectError
from nndiag.hookspecs import hookimpl
from nndiag.probe import Outcome, Probe, ProbeContext, threshold
from nndiag.seeding import fork_seeded
from nndiag.torchhooks import CallTracer, module_label, train_mode
from nndiag.probes.batch_independence.compare import (
    GENERIC_HINT, Event, compare_runs, mixing_hint, one_sample, output_batch_dim)
from nndiag.probes.batch_independence.inputs import (
    concat_inputs, identity_hook, model_inputs, perturb, pick_count, sample_count, take_samples,
    uses_batch_stats)

__all__ = ["BatchIndependenceConfig", "BatchIndependenceProbe", "one_sample"]


@dataclass(frozen=True)
class BatchIndependenceConfig:
    """Settings of the batch-independence probe."""

    samples: int = threshold(
        7, "own choice: enough samples for batch statistics to show, few enough to trace cheaply; "
        "neural_net_checklist tests batch independence on a small batch too",
        "preferred number of samples (another small count is used when it equals an input size)")
    tolerance: float = threshold(
        1e-5, "torch.testing.assert_close float32 atol (1e-5), taken relative to the tensor's "
        "largest value", "a change of another sample's value above this (relative) counts as mixing")
    noise: float = threshold(
        1.0, "own choice: one input standard deviation, so a batch statistic over 7 samples moves "
        "by ~0.14 std, far above the tolerance", "size of the perturbation of float inputs")
    gradient_check: bool = threshold(
        True, "neural_net_checklist (forward and backward batch-independence tests)",
        "also backpropagate one sample's output and require zero gradient on the other inputs")


class BatchIndependenceProbe(Probe):
    """Perturbs one sample's input and finds the first operation where other samples change."""

    id = "batch-independence"
    cost = 80  # the order of a check: cheapest first
    hint = ('samples mix when a view/reshape or a softmax/normalisation runs across the batch '
            'dimension')
    description = "Does each sample's output depend on its own input only (no mixing across the batch)?"
    Config = BatchIndependenceConfig

    def run(self, ctx: ProbeContext, out: Outcome) -> None:
        cfg = self.config
        model = ctx.bench.fresh_model()
        inputs, available = self._inputs(ctx)
        if available < 2:
            out.skip(f"the data gives {available} sample(s); checking that samples do not mix "
                     "needs at least 2 in one batch.")
        n = pick_count(inputs, available, cfg.samples)
        inputs = take_samples(inputs, available, n)
        batch_stat = [(p, m) for p, m in model.named_modules() if uses_batch_stats(m)]
        self._bypassed = tuple(p for p, _ in batch_stat)
        handles = [m.register_forward_hook(identity_hook) for _, m in batch_stat]
        try:
            with train_mode(model, False):
                try:
                    verdict = self._check(ctx, model, inputs, n, out)
                except SubjectError:
                    if ctx.subject.training_step is not None or ctx.subject.train_step is not None:
                        # model(inputs) is nndiag's guess; the file calls its model its own way
                        # (an RNN LM passing its hidden state, a model taking the whole batch).
                        out.skip("the model cannot be called on the batch inputs alone (the "
                                 "file's training_step/train_step calls it its own way), so one "
                                 "sample's input cannot be perturbed on its own.")
                    if n == available:
                        raise
                    # a model that hard-codes its batch size: use the whole first batch
                    inputs, available = self._inputs(ctx, whole_first=True)
                    n = available
                    verdict = self._check(ctx, model, inputs, n, out)
        finally:
            for h in handles:
                h.remove()
        out.metric("samples", n)
        if batch_stat and verdict == "independent":
            names = ", ".join(module_label(p, m) for p, m in batch_stat[:4])
            out.summary = ""
            out.skip(f"{names}: normalisation with batch statistics in eval mode (track_running_stats="
                     "False), so samples mix there by design; with those layers bypassed the rest of "
                     "the model keeps samples independent.")

    # ---- inputs --------------------------------------------------------------------------------
    def _inputs(self, ctx, whole_first: bool = False) -> tuple[Any, int]:
        """The inputs of enough samples (the first batches joined), and how many samples."""
        bench = ctx.bench
        batches = [bench.first_batch()] if whole_first else bench.probe_batches(self.config.samples)
        parts = [model_inputs(b, ctx.subject) for b in batches]
        sizes = [sample_count(p) for p in parts]
        if len(parts) == 1 or sizes[0] >= self.config.samples:
            return parts[0], sizes[0]
        try:
            joined = concat_inputs(parts, sizes)
        except (RuntimeError, ValueError, TypeError):
            return parts[0], sizes[0]
        return joined, sum(sizes)

    # ---- the check -----------------------------------------------------------------------------
    def _check(self, ctx, model, inputs, n: int, out: Outcome) -> str:
        cfg = self.config
        with torch.no_grad():
            base_events, base_out = self._record(ctx, model, inputs, n)
        found = None
        regrouped = None  # intermediate values of other samples moved, their outputs did not
        tested = 0
        for i in sorted({0, n - 1}):
            perturbed = perturb(inputs, n, i, cfg.noise, ctx.seed + i)
            if perturbed is None:
                continue
            tested += 1
            with torch.no_grad():
                events, output = self._record(ctx, model, perturbed, n)
            result = compare_runs(base_events, events, base_out, output, n, i, cfg.tolerance)
            if result["output_mixed"]:
                found = (i, result)
                break
            if result["first"] is not None:
                regrouped = regrouped or (i, result)
            elif not result["own_changed"]:
                found = found or (i, result)
        if tested == 0:
            out.skip("the inputs cannot be perturbed: no float input, and no integer input with "
                     "a per-sample sequence (token ids) whose values differ.")
        grad = self._gradient_check(ctx, model, inputs, n, out) if cfg.gradient_check else None
        if found is not None and found[1]["output_mixed"]:
            self._report_mixing(found[0], found[1], n, out)
            return "mixed"
        if regrouped is not None and grad is not None and grad > cfg.tolerance:
            self._report_mixing(regrouped[0], regrouped[1], n, out)
            return "mixed"
        if regrouped is not None:
            # Packed sequences (sorted by length, interleaved in time) and other regroupings
            # move values between batch positions inside the model, yet no other sample's output
            # (nor, where it can be measured, its input gradient) changes: a fact, not mixing
            # (a packed-sequence BiLSTM failed here).
            first = regrouped[1]["first"]
            out.finding("pass", f"Perturbing sample {regrouped[0]}'s input moved values of other "
                        f"batch positions inside the model (first at {first.label} in "
                        f"{first.path or '<model>'}), but no other sample's output"
                        + (" or input gradient" if grad is not None else "") + " changed: the "
                        "model regroups samples internally (e.g. packed sequences) without mixing "
                        "them.", where=first.path or "<model>", metric="regrouped")
        if grad is not None and grad > cfg.tolerance:
            out.fail(f"Backpropagating sample 0's output alone gives a non-zero gradient on the other "
                     f"samples' inputs (largest {grad:.3g} relative to sample 0's own, limit "
                     f"{cfg.tolerance:g}), although the forward pass showed no mixing. An operation "
                     "in the backward pass (a custom autograd Function) mixes samples.",
                     where="<model>", value=grad, limit=cfg.tolerance, metric="gradient_leak")
            out.summary = "samples mix in the backward pass"
            return "mixed"
        if found is not None and not found[1]["own_changed"]:
            out.summary = ""
            out.skip("perturbing a sample's input changed no output at all, not even its own: the "
                     "model's output does not depend on its input here (dead or saturated units, a "
                     "constant output; see dead-neurons and saturation), so independence cannot be "
                     "tested. The intermediate values that did change stayed within their sample.")
        out.summary = (f"no mixing: perturbing one sample's input changed only its own output "
                       f"({n} samples, eval mode" + (", forward and backward)" if grad is not None
                                                     else ", forward)"))
        return "independent"

    def _record(self, ctx, model, inputs, n: int) -> tuple[list[Event], Any]:
        """Every module and torch-function output of one eval forward, cloned, in execution order."""
        events: list[Event] = []

        bypassed = getattr(self, "_bypassed", ())

        def on_call(info):
            if any(info.module_path == p or info.module_path.startswith(p + ".") for p in bypassed):
                return  # inside a bypassed batch-statistics layer
            ts = [t.detach().clone() for t in iter_tensors(info.output)]
            if ts:
                events.append(Event(info.name, info.module_path, "op", info.op, ts))

        def on_module(path, module, mod_inputs, output):
            ts = [t.detach().clone() for t in iter_tensors(output)]
            hint = False
            if isinstance(module, torch.nn.RNNBase) and not module.batch_first:
                first = next(iter_tensors(mod_inputs), None)
                hint = first is not None and first.dim() == 3 and first.shape[0] == n and first.shape[1] != n
            if ts:
                events.append(Event(module_label(path, module), path, "module", type(module).__name__,
                                     ts, hint))

        tracer = CallTracer(model, on_call=on_call, on_module=on_module)
        with fork_seeded(ctx.seed), tracer.active():
            output = ctx.bench.forward(model, (inputs, None))
        return events, map_tensors(output, lambda t: t.detach().clone())

    def _gradient_check(self, ctx, model, inputs, n: int, out: Outcome) -> float | None:
        """Largest input gradient on samples != 0 relative to sample 0's, from sample 0's output
        alone; None when no float input has a batch dimension."""
        leaves = []

        def grad_leaf(t):
            if t.is_floating_point() and t.dim() > 0 and t.shape[0] == n:
                t = t.detach().clone().requires_grad_(True)
                leaves.append(t)
            return t

        x = map_tensors(inputs, grad_leaf)
        if not leaves:
            out.data["gradient_check"] = "skipped: no float input (token ids have no gradient)"
            return None
        with fork_seeded(ctx.seed), torch.enable_grad():
            try:
                output = ctx.bench.forward(model, (x, None))
            except SubjectError as exc:  # e.g. an in-place op on the input: keep the forward verdict
                out.data["gradient_check"] = f"skipped: the forward pass with input gradients raised: {exc}"
                return None
            gen = torch.Generator(device="cpu").manual_seed(ctx.seed)
            total = None
            for t in iter_tensors(output):
                if not t.is_floating_point() or not t.requires_grad:
                    continue
                d = output_batch_dim(t, n)
                if d is None:
                    continue
                own = t.select(d, 0)
                w = torch.randn(own.shape, generator=gen).to(own.device, own.dtype)
                part = (own * w).sum()
                total = part if total is None else total + part
            if total is None:
                out.data["gradient_check"] = "skipped: the output does not require grad"
                return None
            grads = torch.autograd.grad(total, leaves, allow_unused=True)
        own_max = other_max = 0.0
        for g in grads:
            if g is None:
                continue
            g = g.detach().abs()
            own_max = max(own_max, float(g[0].max()))
            if n > 1:
                other_max = max(other_max, float(g[1:].max()))
        scale = max(own_max, other_max, 1e-30)
        leak = other_max / scale if other_max > 0 else 0.0
        out.metric("gradient_leak", leak)
        out.data["gradient_check"] = {"own_max": own_max, "others_max": other_max}
        return leak

    def _report_mixing(self, i: int, result: dict, n: int, out: Outcome) -> None:
        first, first_module = result["first"], result["first_module"]
        affected = result["affected"]
        out.metric("affected_samples", affected)
        out.metric("max_change", result["max_change"])
        where = (first.path or "<model>") if first is not None else "<model>"
        what = (f"changed the outputs of {affected} of the other {n - 1} samples (largest change "
                f"{result['max_change']:.3g} relative to the output's scale, limit "
                f"{self.config.tolerance:g})" if result["output_mixed"]
                else "changed other samples' intermediate values (though not, on this batch, their outputs)")
        text = f"Perturbing sample {i}'s input {what}: samples are not independent in eval mode."
        if first is not None:
            loc = (f"{first.label}" if first.kind == "module"
                   else f"{first.label} in {first.path or '<model>'}")
            text += f" Samples first mix at {loc} (operation #{result['first_index'] + 1} of the forward pass)"
            if result["via"] is not None:
                text += f", after {result['via'].label} reduced over the batch"
            if first_module is not None and first_module is not first:
                text += f"; the first module whose output mixes is {first_module.label}"
            text += ". " + mixing_hint(first, first_module, result["via"])
        else:
            text += (" No single operation spreads the change over several samples, so the output "
                     "rows are reordered or shifted across the batch (a roll, sort or index over "
                     "dim 0). " + GENERIC_HINT)
        out.fail(text, where=where, value=affected, limit=0, metric="affected_samples")
        out.data["first_mixing"] = {"operation": first.label if first else None,
                                    "module": first_module.label if first_module else None,
                                    "index": result["first_index"]}
        out.summary = (f"samples mix at {first.label if first.kind == 'module' else f'{first.label} in {where}'}"
                       if first is not None else f"sample {i}'s input changes other samples' outputs")


@hookimpl
def nndiag_register_probes():
    """Register the batch-independence probe."""
    return [BatchIndependenceProbe]
