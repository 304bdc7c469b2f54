"""What each way of checking the gradients for NaN/Inf before the update costs inside a training step.

    OMP_NUM_THREADS=1 python benchmarks/finiteness_flag_cost.py [--model mlp] [--rounds 400]
                                                               [--arms plain2,kernel,...] [--warm]

Every arm trains *one* model and optimizer (the reference model, Adam(1e-3), one batch), and each
arm attaches its hooks for its own block of 10 steps only. So the arms differ by their hooks alone,
not by memory layout. The arms take turns, in an order shuffled every round. For each round, an
arm's figure is the median of its block's steps 2-10 minus plain's median in the same round. The
table gives the median over rounds of that difference, its interquartile range, and the ratio.

Arms (``--arms``, comma-separated; ``plain`` is always run):

* ``plain2``: plain again (the A/A control);
* ``forward_hook``: a no-op forward pre-hook with kwargs (where the watch keeps the inputs);
* ``step_hook``: a no-op optimizer step pre-hook;
* ``kernel``: the watch's flag, GradScaler's fused kernel
  (``torch._amp_foreach_non_finite_check_and_unscale_``, scale 1) over the bias gradients, with the
  flag read through a NumPy view;
* ``kernel_item``: the same, with the flag read by ``.item()``;
* ``kernel_sentinel``: the same kernel over the watch's own sentinel set (``sentinel_parameters``);
* ``numpy_sum``: ``Tensor.numpy()`` and a NumPy reduction per bias gradient, no torch op;
* ``sum_out``: ``torch.sum(grad, 0, out=kept)`` per bias gradient, read through NumPy views;
* ``watch``: the watch's ``minimal`` profile (steady steps only: no full norms, flush or sample).

``--warm`` prints instead the warm cost (best of 5 timeit runs, outside training) of the watch's
own per-step calls on the model: the step pre-hook on a steady step, the fused kernel alone,
``w.step(loss)`` and the forward capture. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nndiag.watch as nw  # noqa: E402
from nndiag.watch.recorder import sentinel_parameters  # noqa: E402
from watch_overhead_parts import _case, block_medians  # noqa: E402

ARMS = ("plain2", "forward_hook", "step_hook", "kernel", "kernel_item", "kernel_sentinel",
        "numpy_sum", "sum_out", "watch")


class _Flags:
    """The step pre-hooks of the arms, over one model's parameters."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.vectors = [p for p in model.parameters() if p.dim() == 1]
        self.sentinel = sentinel_parameters(list(model.parameters()))
        self.found, self.unit = torch.zeros(1), torch.ones(1)
        self.view = self.found.numpy()
        self.kept = [torch.zeros(()) for _ in self.vectors]
        self.kept_views = [k.numpy() for k in self.kept]

    def _kernel(self, params) -> None:
        torch._amp_foreach_non_finite_check_and_unscale_([p.grad for p in params], self.found, self.unit)

    def kernel(self, optimizer, args, kwargs) -> None:
        self._kernel(self.vectors)
        if self.view[0]:
            raise FloatingPointError("non-finite gradient")

    def kernel_item(self, optimizer, args, kwargs) -> None:
        self._kernel(self.vectors)
        if self.found.item():
            raise FloatingPointError("non-finite gradient")

    def kernel_sentinel(self, optimizer, args, kwargs) -> None:
        self._kernel(self.sentinel)
        if self.view[0]:
            raise FloatingPointError("non-finite gradient")

    def numpy_sum(self, optimizer, args, kwargs) -> None:
        total = 0.0
        for p in self.vectors:
            total += float(p.grad.numpy().sum())
        if total != total or total in (float("inf"), float("-inf")):
            raise FloatingPointError("non-finite gradient")

    def sum_out(self, optimizer, args, kwargs) -> None:
        for p, k in zip(self.vectors, self.kept):
            torch.sum(p.grad, 0, out=k)
        total = sum(float(v) for v in self.kept_views)
        if total != total or total in (float("inf"), float("-inf")):
            raise FloatingPointError("non-finite gradient")


def _attach(arm: str, model, opt, flags: _Flags):
    """A callable registering the arm's hooks for one block (returning their handles), or None."""
    if arm == "forward_hook":
        return lambda: [model.register_forward_pre_hook(lambda module, args, kwargs: None, with_kwargs=True)]
    if arm == "step_hook":
        return lambda: [opt.register_step_pre_hook(lambda optimizer, args, kwargs: None)]
    if arm in ("kernel", "kernel_item", "kernel_sentinel", "numpy_sum", "sum_out"):
        return lambda: [opt.register_step_pre_hook(getattr(flags, arm))]
    return None


def paired(model, x, y, loss_fn, arms: list[str], rounds: int, seed: int = 0) -> dict[str, list[float]]:
    """{arm: [its block median minus plain's, in us, per round]}, and plain's own medians."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    flags = _Flags(model)
    watch = nw.watch(model, opt, profile="minimal", on_event=lambda e: None, raise_on_stop=False)
    spec = {"plain": (None, None)}
    spec.update({a: (_attach(a, model, opt, flags), watch if a == "watch" else None) for a in arms})
    medians = block_medians(model, opt, x, y, loss_fn, spec, rounds, seed)
    plain = medians.pop("plain")
    out = {a: [m - p for m, p in zip(v, plain)] for a, v in medians.items()}
    out["plain"] = plain
    return out


def warm_costs(model, x, y, loss_fn, number: int = 20000) -> dict[str, float]:
    """{call: warm microseconds} of the watch's per-step calls, outside training."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    w = nw.watch(model, opt, profile="minimal", on_event=lambda e: None, raise_on_stop=False).start()
    try:
        loss = loss_fn(model(x), y)
        loss.backward()
        rec = w.recorder
        found, unit = torch.zeros(1), torch.ones(1)

        def reset():
            w.step_index = 1  # a steady step: no full norms, no sample, no flush
            for buf in (rec._norms, rec._losses, rec._lrs, rec._has_loss):
                buf.clear()

        hook = next(iter(opt._optimizer_step_pre_hooks.values()))  # the steady one-frame hook

        def pre_hook():
            reset()
            hook(opt, (), {})

        def kernel():
            torch._amp_foreach_non_finite_check_and_unscale_([p.grad for p in w._small], found, unit)

        def w_step():
            reset()
            w.step(loss)

        capture = next(iter(model._forward_pre_hooks.values()))
        calls = {"step pre-hook": pre_hook, "fused kernel alone": kernel, "w.step(loss)": w_step,
                 "forward capture": lambda: capture(model, (x,), {}), "(the reset alone)": reset}
        return {name: min(timeit.repeat(f, number=number, repeat=5)) / number * 1e6
                for name, f in calls.items()}
    finally:
        w.close()


def main(argv=None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "lstm", "transformer"])
    p.add_argument("--rounds", type=int, default=400, help="timed rounds of 10 steps per arm")
    p.add_argument("--arms", default=",".join(ARMS), help="comma-separated subset of " + ", ".join(ARMS))
    p.add_argument("--warm", action="store_true", help="the watch's calls, warm, outside training")
    args = p.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if set(arms) - set(ARMS):
        p.error(f"unknown arm(s) {', '.join(sorted(set(arms) - set(ARMS)))}: use {', '.join(ARMS)}")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    torch.set_num_threads(1)
    model, (x, y), loss_fn = _case(args.model)
    if args.warm:
        print(f"torch {torch.__version__}; {args.model}; warm cost, best of 5 timeit runs")
        for name, us in warm_costs(model, x, y, loss_fn).items():
            print(f"{name:22s} {us:7.2f} us")
        return 0
    out = paired(model, x, y, loss_fn, arms, args.rounds)
    base = statistics.median(out.pop("plain"))
    print(f"torch {torch.__version__}; {args.model}; one model, {args.rounds} rounds of 10 steps per "
          f"arm; CPU time of the training thread; plain step {base:.1f} us (median of block medians)")
    print(f"{'arm':16s} {'extra (median)':>15s} {'interquartile range':>24s} {'ratio':>8s}")
    for arm, d in out.items():
        d = sorted(d)
        n = len(d)
        iqr = f"{d[n // 4]:+.1f}..{d[(3 * n) // 4]:+.1f} us"
        print(f"{arm:16s} {statistics.median(d):+13.1f}us {iqr:>24s} {1 + statistics.median(d) / base:7.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
