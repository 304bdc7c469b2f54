"""What the watch's CPU overhead is made of: paired arms on one model, in one process.

    OMP_NUM_THREADS=1 python benchmarks/watch_overhead_parts.py [--model mlp] [--rounds 400]

Arms, each a fresh copy of the reference model with Adam(1e-3) on the same batch:

* ``plain``: the training step alone (the reference every other arm is paired with);
* ``floor``: what any per-step finiteness check must do, and nothing else: a no-op forward
  pre-hook (where the watch keeps the inputs for a NaN replay), an optimizer step pre-hook that
  runs the fused finiteness kernel over the biases' gradients and reads its flag, and a
  ``loss.detach()`` kept for 25 steps (what ``w.step(loss)`` stores);
* the watch's ``minimal`` and ``default`` profiles, at the CPU default ``norm_every`` and at the
  values given by ``--norm-every``.

Each round runs 10 steps per arm in an order shuffled per round. The table shows the mean extra
CPU time per step over ``plain`` in the same round, its standard error, and the ratio. This is
more stable than the per-step medians of ``watch_overhead.py`` on a machine whose A/A range spans
several percent, because the paired differences of many rounds average the noise.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import nndiag.watch as nw  # noqa: E402
from watch_overhead import TinyTransformer, _reference  # noqa: E402


def _case(name: str):
    if name == "transformer":
        torch.manual_seed(0)
        return (TinyTransformer(), (torch.randint(0, 100, (64, 32)), torch.randint(0, 10, (64,))),
                torch.nn.functional.cross_entropy)
    return _reference(name)


def _floor_hooks(model, opt) -> None:
    """The floor arm's hooks: a no-op capture and the fused flag with its read."""
    vectors = [p for p in model.parameters() if p.dim() == 1]
    found, unit = torch.zeros(1), torch.ones(1)

    def flag(optimizer, args, kwargs):
        grads = [p.grad for p in vectors if p.grad is not None]
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, unit)
            found.item()

    model.register_forward_pre_hook(lambda module, args, kwargs: None, with_kwargs=True)
    opt.register_step_pre_hook(flag)


def _arms(model, norm_every: list[int]):
    arms = {}
    names = ["plain", "floor", "minimal", "default"]
    names += [f"{p}:norm_every={n}" for n in norm_every for p in ("minimal", "default")]
    for name in names:
        m = copy.deepcopy(model)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        w = None
        if name == "floor":
            _floor_hooks(m, opt)
        elif name != "plain":
            profile, _, extra = name.partition(":")
            kw = {"norm_every": int(extra.split("=")[1])} if extra else {}
            w = nw.watch(m, opt, profile=profile, on_event=lambda e: None, raise_on_stop=False,
                         **kw).start()
        arms[name] = (m, opt, w, [])
    return arms


def main(argv=None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "lstm", "transformer"])
    p.add_argument("--rounds", type=int, default=400, help="rounds of 10 steps per arm")
    p.add_argument("--norm-every", default="10,25", help="extra norm_every values to try")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, (x, y), loss_fn = _case(args.model)
    arms = _arms(model, [int(v) for v in args.norm_every.split(",") if v])
    times = {a: [] for a in arms}
    order = list(arms)
    shuffle = random.Random(0).shuffle
    warm = 5
    for r in range(args.rounds + warm):
        shuffle(order)
        for a in order:
            m, opt, w, kept = arms[a]
            t0 = time.thread_time()
            for _ in range(10):
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(m(x), y)
                loss.backward()
                opt.step()
                if w is not None:
                    w.step(loss)
                elif a == "floor":
                    kept.append(loss.detach())
                    if len(kept) == 25:
                        kept.clear()
            if r >= warm:
                times[a].append((time.thread_time() - t0) / 10)
    for _, _, w, _ in arms.values():
        if w is not None:
            w.close()
    base = statistics.mean(times["plain"])
    print(f"torch {torch.__version__}; {args.model}; {args.rounds} rounds of 10 steps per arm; "
          f"CPU time of the training thread; plain step {base * 1e3:.3f} ms")
    print(f"{'arm':28s} {'extra per step':>16s} {'se':>8s} {'ratio':>8s}")
    for a in arms:
        if a == "plain":
            continue
        d = [ta - tp for ta, tp in zip(times[a], times["plain"])]
        mean, se = statistics.mean(d), statistics.stdev(d) / len(d) ** 0.5
        print(f"{a:28s} {mean * 1e6:+14.1f}us {se * 1e6:6.1f}us {1 + mean / base:7.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
