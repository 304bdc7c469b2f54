"""The watch's cost per training step, side by side with the same plain step, in one process.

    python benchmarks/watch_overhead.py [--steps 100] [--warmup 20] [--repeats 3] [--block 10]
                                        [--models mlp,cnn,lstm,transformer] [--device cpu|cuda|both]

For each model (the reference MLP, CNN and LSTM, and a small Transformer encoder) five copies of
the same initial weights train on the same batch with the same step function: plain; plain again
(the A/A control: two identical arms differ by this much from memory layout and noise alone);
watched with the default profile; watched with the ``minimal`` profile (every-step finiteness and
gradient norms only); and plain under ``torch.autograd.detect_anomaly``. The copies take turns in
blocks of ``--block`` consecutive steps (a training loop runs warm, one model at a time), with the
order of the blocks shuffled every round (seeded), so machine load and the cache state an arm
leaves behind hit all of them alike. Step ``j`` of a variant's block is paired with step ``j`` of
the plain block of the same round. Per repeat, a
variant's **median** is the median over its steps of the paired ratio (the steady-state step), and
its **mean** is its total time over the plain total (the amortized cost, with the per-interval
flush and the per-50-step samples that a median hides). Each repeat builds fresh copies (new
memory layout); the table gives the median over repeats and, with ``--spread``, their range.
CPU runs use ``torch.set_num_threads(1)`` and, by default, the CPU time of the training thread (a
shared machine's other processes do not count); ``--clock wall`` uses wall time. The garbage
collector runs as in any training loop (``--no-gc`` turns it off in the timed steps of every arm
and collects between rounds). Nothing is asserted: the numbers are printed as measured.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import gc
import random
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nndiag.watch as nw  # noqa: E402

ARMS = ("plain", "plain2", "default", "minimal", "anomaly")
MODELS = ("mlp", "cnn", "lstm", "transformer")


class TinyTransformer(nn.Module):
    """A 2-layer Transformer encoder classifier over 32 tokens (d_model 64, 4 heads)."""

    def __init__(self, vocab: int = 100, d: int = 64, classes: int = 10) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        layer = nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True)
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(d, classes)

    def forward(self, x):
        return self.head(self.enc(self.emb(x)).mean(1))


def _reference(name: str):
    """(model, batch, loss_fn) of a reference model file: its first batch if the data is there,
    else a random batch of the same shape."""
    import importlib

    mod = importlib.import_module(f"reference_models.{name}")
    torch.manual_seed(0)
    model = mod.build_model()
    try:
        batch = next(iter(mod.dataloader(64, train=True)))
    except Exception:  # noqa: BLE001 - no data here: same shapes, random values
        shapes = {"mlp": (64, 1, 28, 28), "cnn": (64, 1, 28, 28), "lstm": (64, 20, 1)}
        x = torch.randn(shapes[name])
        y = torch.randn(64, 1) if name == "lstm" else torch.randint(0, 10, (64,))
        batch = (x, y)
    return model, batch, mod.loss_fn


def cases():
    """(name, model, batch, loss_fn) per benchmarked model."""
    for name in ("mlp", "cnn", "lstm"):
        model, batch, loss_fn = _reference(name)
        yield name.upper(), model, batch, loss_fn
    torch.manual_seed(0)
    yield "Transformer", TinyTransformer(), (torch.randint(0, 100, (64, 32)),
                                               torch.randint(0, 10, (64,))), F.cross_entropy


def _arms(model, device, name, with_anomaly):
    """Fresh copies of ``model``: {arm: (model, optimizer, watch or None)}."""
    arms = {}
    for v in ARMS if with_anomaly else ARMS[:-1]:
        m = copy.deepcopy(model).to(device)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        w = None
        if v in ("default", "minimal"):
            w = nw.watch(m, opt, profile=v, name=name, on_event=lambda e: None,
                         raise_on_stop=False).start()
        arms[v] = (m, opt, w)
    return arms


def _train_step(m, opt, loss_fn, x, y, anomaly):
    """The user's step, the same in every arm (the watched arms add only their ``w.step``)."""
    ctx = torch.autograd.detect_anomaly(check_nan=True) if anomaly else contextlib.nullcontext()
    with ctx:
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(m(x), y)
        loss.backward()
        opt.step()
    return loss


def run_once(model, batch, loss_fn, device, name, steps, warmup, block, clock, with_anomaly=True,
             no_gc=False, seed=0):
    """One repeat on fresh copies of ``model``: {arm: [[seconds per step] per timed round]}."""
    x, y = (t.to(device) for t in batch)
    arms = _arms(model, device, name, with_anomaly)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = {v: [] for v in arms}
    order = list(arms)
    shuffle = random.Random(seed).shuffle  # Python's RNG: torch's is the models' business
    rounds_warm, rounds = -(-warmup // block), max(1, -(-steps // block))
    gc_was = gc.isenabled()
    try:
        for r in range(rounds_warm + rounds):
            # a new order every round: a rotation would keep each arm behind the same one, and the
            # arm before leaves the caches in its own state (in a trial here, a fixed order put the A/A at 1.04x)
            shuffle(order)
            if no_gc:
                gc.collect()
                gc.disable()
            for v in order:
                m, opt, w = arms[v]
                anomaly = v == "anomaly"
                ts = []
                for _ in range(block):
                    sync()
                    t0 = clock()
                    loss = _train_step(m, opt, loss_fn, x, y, anomaly)
                    if w is not None:
                        w.step(loss)
                    sync()
                    ts.append(clock() - t0)
                if r >= rounds_warm:
                    times[v].append(ts)
            if no_gc and gc_was:
                gc.enable()
    finally:
        if gc_was:
            gc.enable()
        for _, _, w in arms.values():
            if w is not None:
                w.close()
    return times


def summarise(times):
    """(median plain step seconds, {arm: (median paired ratio, mean ratio)}) of one repeat."""
    plain = [t for blk in times["plain"] for t in blk]
    out = {}
    for v, blocks in times.items():
        if v == "plain":
            continue
        ratios = [a / max(b, 1e-9) for blk, pblk in zip(blocks, times["plain"])
                  for a, b in zip(blk, pblk)]
        total = sum(t for blk in blocks for t in blk)
        out[v] = (statistics.median(ratios), total / max(sum(plain), 1e-9))
    return statistics.median(plain), out


def bench(name, model, batch, loss_fn, device, steps, warmup, clock=time.thread_time, *,
          repeats=3, block=10, with_anomaly=True, no_gc=False):
    """(median plain step seconds over repeats, {arm: {"median": [...], "mean": [...]}}, one
    value per repeat)."""
    base, per = [], {}
    for rep in range(repeats):
        times = run_once(model, batch, loss_fn, device, name, steps, warmup, block, clock,
                         with_anomaly, no_gc, seed=rep)
        b, out = summarise(times)
        base.append(b)
        for v, (med, mean) in out.items():
            per.setdefault(v, {"median": [], "mean": []})
            per[v]["median"].append(med)
            per[v]["mean"].append(mean)
    return statistics.median(base), per


def _cell(values, spread):
    mid = f"{statistics.median(values):.3f}x"
    return f"{mid} ({min(values):.3f}-{max(values):.3f})" if spread else mid


def main(argv=None) -> int:
    """Print the table."""
    import warnings

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100, help="timed steps per arm and repeat (>= 50)")
    p.add_argument("--warmup", type=int, default=20, help="steps per arm before the timed ones")
    p.add_argument("--repeats", type=int, default=3, help="fresh copies, timed again (median and range)")
    p.add_argument("--block", type=int, default=10, help="consecutive steps per arm and turn")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    p.add_argument("--device", default="both", choices=["cpu", "cuda", "both"])
    p.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                   help="cpu: CPU time of the training thread (time.thread_time), immune to other "
                   "processes on a shared machine; wall: time.perf_counter")
    p.add_argument("--spread", action="store_true", help="also print each cell's range over repeats")
    p.add_argument("--no-anomaly", action="store_true", help="skip the detect_anomaly arm")
    p.add_argument("--no-gc", action="store_true",
                   help="garbage collector off in the timed steps (every arm), on between rounds")
    args = p.parse_args(argv)
    wanted = {m.strip().lower() for m in args.models.split(",") if m.strip()}
    if wanted - set(MODELS):
        p.error(f"unknown model(s) {', '.join(sorted(wanted - set(MODELS)))}: use {', '.join(MODELS)}")
    for flag in ("steps", "repeats", "block"):
        if getattr(args, flag) < 1:
            p.error(f"--{flag} must be at least 1")
    warnings.filterwarnings("ignore")  # detect_anomaly warns that it is slow, every step
    devices = ["cpu"] + (["cuda"] if args.device != "cpu" and torch.cuda.is_available() else [])
    if args.device == "cuda":
        devices = [d for d in devices if d == "cuda"]
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"torch {torch.__version__}; {args.clock} clock; {args.repeats} repeat(s) of {args.steps} "
          f"steps per arm after {args.warmup} warm-up, in blocks of {args.block}; median: median over "
          f"steps of the paired ratio to the plain step; mean: total over plain total; median over "
          f"repeats{' (range)' if args.spread else ''}; gc {'off' if args.no_gc else 'on'}")
    cols = [("plain2", "median", "A/A"), ("default", "median", "default"),
            ("default", "mean", "default"), ("minimal", "median", "minimal"),
            ("minimal", "mean", "minimal")]
    if not args.no_anomaly:
        cols.append(("anomaly", "median", "anomaly"))
    w = 21 if args.spread else 8
    print(f"{'device':<6} {'model':<12} {'plain ms':>9} " + " ".join(f"{c[2]:>{w}}" for c in cols))
    print(f"{'':<6} {'':<12} {'':>9} " + " ".join(f"{c[1]:>{w}}" for c in cols))
    for device in devices:
        if device == "cpu":
            torch.set_num_threads(1)
        for name, model, batch, loss_fn in cases():
            if name.lower() not in wanted:
                continue
            use = clock if device == "cpu" else time.perf_counter  # CUDA: wall time after sync
            base, per = bench(name, model, batch, loss_fn, device, args.steps, args.warmup, use,
                              repeats=args.repeats, block=args.block,
                              with_anomaly=not args.no_anomaly, no_gc=args.no_gc)
            cells = " ".join(f"{_cell(per[v][k], args.spread):>{w}}" for v, k, _ in cols)
            print(f"{device:<6} {name:<12} {base * 1e3:>9.3f} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
