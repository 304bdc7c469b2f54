"""What one forward pre-hook costs, warm, by the kind of callable registered.

    python benchmarks/hook_call_cost.py [--repeats 15] [--number 5000]

Each arm is its own one-layer module (``nn.Sequential(nn.Linear(4, 4))`` on a (2, 4) input) with
one ``with_kwargs`` forward pre-hook: none, a lambda, a bound method, a ``functools.partial`` of
it, the watch's ``WatchHook`` of it, and two forwarding proxies (a method, a ``__call__``). The
hooked methods do what the watch's capture does (keep references to the inputs). The arms take
turns for ``--repeats`` rounds and each keeps its best round (the warm cost; inside a training
step, after a backward, caches are cold and the same call costs several times more, see
``watch_overhead_parts.py --phases``). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import functools
import sys
import timeit
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nndiag.watch.events import WatchHook  # noqa: E402


class _Capture:
    """Keeps the last inputs, as the watch's forward pre-hook does."""

    def __init__(self) -> None:
        self.random = False
        self.captured = None

    def capture(self, module, args, kwargs) -> None:
        if module.training:
            self.captured = (args, kwargs, torch.get_rng_state() if self.random else None)


class _MethodProxy:
    __slots__ = ("target",)

    def __init__(self, target: _Capture) -> None:
        self.target = target

    def capture(self, module, args, kwargs) -> None:
        self.target.capture(module, args, kwargs)


class _CallProxy:
    __slots__ = ("fn",)

    def __init__(self, fn) -> None:
        self.fn = fn

    def __call__(self, module, args, kwargs) -> None:
        return self.fn(module, args, kwargs)


def main(argv=None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--number", type=int, default=5000, help="module calls per timing")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    target = _Capture()
    kinds = {"none": None, "lambda": lambda m, a, k: None, "bound method": target.capture,
             "functools.partial": functools.partial(target.capture),
             "WatchHook": WatchHook(target.capture), "proxy method": _MethodProxy(target).capture,
             "proxy __call__": _CallProxy(target.capture)}
    x = torch.randn(2, 4)
    modules = {}
    for name, hook in kinds.items():
        m = torch.nn.Sequential(torch.nn.Linear(4, 4))
        if hook is not None:
            m.register_forward_pre_hook(hook, with_kwargs=True)
        modules[name] = m
    best = {name: float("inf") for name in kinds}
    for _ in range(args.repeats):
        for name, m in modules.items():
            t = timeit.timeit(lambda m=m: m(x), number=args.number) / args.number
            best[name] = min(best[name], t)
    print(f"torch {torch.__version__}; best of {args.repeats} rounds of {args.number} calls; us per module call")
    print(f"{'hook':20s} {'call':>8s} {'extra':>8s}")
    for name in kinds:
        print(f"{name:20s} {best[name] * 1e6:8.2f} {(best[name] - best['none']) * 1e6:+8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
