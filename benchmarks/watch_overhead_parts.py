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

``--phases`` splits the step instead: arms ``plain``, ``plain2`` (the A/A control), ``floor``,
``minimal`` and ``default``, and for each the median CPU time of the forward (with the loss),
the backward, ``optimizer.step()`` (where the step pre-hook runs) and ``w.step(loss)``, over the
steady steps only: no full-norm step, no sample step, no flush, so the medians are what the
per-step medians of ``watch_overhead.py`` see. It shows which hook a cost sits in.
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
from watch_overhead import TinyTransformer, _reference, floor_hooks  # noqa: E402


def _case(name: str):
    if name == "transformer":
        torch.manual_seed(0)
        return (TinyTransformer(), (torch.randint(0, 100, (64, 32)), torch.randint(0, 10, (64,))),
                torch.nn.functional.cross_entropy)
    return _reference(name)


def _arms(model, norm_every: list[int]):
    arms = {}
    names = ["plain", "floor", "minimal", "default"]
    names += [f"{p}:norm_every={n}" for n in norm_every for p in ("minimal", "default")]
    for name in names:
        m = copy.deepcopy(model)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        w = None
        if name == "floor":
            floor_hooks(m, opt)
        elif name != "plain":
            profile, _, extra = name.partition(":")
            kw = {"norm_every": int(extra.split("=")[1])} if extra else {}
            w = nw.watch(m, opt, profile=profile, on_event=lambda e: None, raise_on_stop=False,
                         **kw).start()
        arms[name] = (m, opt, w, [])
    return arms


PHASES = ("forward", "backward", "optimizer.step", "w.step", "total")


def _steady(step: int) -> bool:
    """A step with no full norms (every 5th on CPU), no sample (every 50th, and the traced
    forward before it) and no flush (every 25th)."""
    return step % 5 != 0 and step % 50 not in (1, 49) and step % 25 != 24


def block_medians(model, opt, x, y, loss_fn, arms: dict, rounds: int, seed: int = 0,
                  warm: int = 5) -> dict[str, list[float]]:
    """{arm: the median of its block's steps per timed round, in us} on *one* model: ``arms`` maps
    a name to ``(attach, watch)``, where ``attach()`` registers the arm's hooks for its block and
    returns their handles, and ``watch`` (or None) is started for the block and closed after it.
    Blocks of 10 steps in an order shuffled per round; a block's first step (colder after the
    switch) and a watch's full-norm, flush and sample steps are left out."""
    order = list(arms)
    medians: dict[str, list[float]] = {a: [] for a in order}
    shuffle = random.Random(seed).shuffle
    clock = time.thread_time_ns
    for r in range(rounds + warm):
        shuffle(order)
        for arm in order:
            attach, w = arms[arm]
            handles = attach() if attach is not None else []
            if w is not None:
                w.start()
            block = []
            try:
                for j in range(10):
                    t0 = clock()
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(model(x), y)
                    loss.backward()
                    opt.step()
                    if w is not None:
                        w.step(loss)
                    t1 = clock()
                    if j >= 1 and (w is None or _steady(w.step_index - 1)):
                        block.append((t1 - t0) / 1e3)
            finally:
                if w is not None:
                    w.close()
                for h in handles:
                    h.remove()
            if r >= warm and block:
                medians[arm].append(statistics.median(block))
    return medians


def phases(model, x, y, loss_fn, rounds: int) -> dict[str, dict[str, float]]:
    """{arm: {phase: median microseconds over the steady steps}}."""
    arms = {}
    for name in ("plain", "plain2", "floor", "minimal", "default"):
        m = copy.deepcopy(model)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        w = None
        if name == "floor":
            floor_hooks(m, opt)
        elif name in ("minimal", "default"):
            w = nw.watch(m, opt, profile=name, on_event=lambda e: None, raise_on_stop=False).start()
        arms[name] = (m, opt, w, {ph: [] for ph in PHASES})
    clock = time.thread_time_ns
    order = list(arms)
    shuffle = random.Random(0).shuffle
    warm = 5
    for r in range(rounds + warm):
        shuffle(order)
        for a in order:
            m, opt, w, kept = arms[a]
            for j in range(10):
                t0 = clock()
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(m(x), y)
                t1 = clock()
                loss.backward()
                t2 = clock()
                opt.step()
                t3 = clock()
                if w is not None:
                    w.step(loss)
                elif a == "floor":
                    loss.detach()
                t4 = clock()
                if r >= warm and _steady(r * 10 + j):
                    for ph, v in zip(PHASES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
                        kept[ph].append(v / 1e3)
    for _, _, w, _ in arms.values():
        if w is not None:
            w.close()
    return {a: {ph: statistics.median(v) for ph, v in kept.items()} for a, (_, _, _, kept) in arms.items()}


def print_phases(name: str, rounds: int, table: dict[str, dict[str, float]]) -> None:
    """The phase table, each arm's medians and their difference to plain."""
    print(f"torch {torch.__version__}; {name}; {rounds} rounds of 10 steps per arm; CPU time of the "
          f"training thread; median over steady steps (no full norms, sample or flush), us")
    print(f"{'arm':10s}" + "".join(f"{ph:>22s}" for ph in PHASES))
    base = table["plain"]
    for a, row in table.items():
        cells = "".join(f"{row[ph]:>12.1f} ({row[ph] - base[ph]:+6.1f})" for ph in PHASES)
        print(f"{a:10s}{cells}  {row['total'] / base['total']:.3f}x")


def main(argv=None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "lstm", "transformer"])
    p.add_argument("--rounds", type=int, default=400, help="rounds of 10 steps per arm")
    p.add_argument("--norm-every", default="10,25", help="extra norm_every values to try")
    p.add_argument("--phases", action="store_true", help="split the steady step by phase instead")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model, (x, y), loss_fn = _case(args.model)
    if args.phases:
        print_phases(args.model, args.rounds, phases(model, x, y, loss_fn, args.rounds))
        return 0
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
