"""The watch's cost per training step, side by side with the same plain step, in one process.

    python benchmarks/watch_overhead.py [--steps 100] [--warmup 20] [--repeats 3] [--block 10]
                                        [--models mlp,cnn,lstm,transformer] [--device cpu|cuda|both]
                                        [--layout same|copies]

For each model (the reference MLP, CNN and LSTM, and a small Transformer encoder) six arms train
on the same batch with the same step function: plain; plain again (the A/A control: two identical
arms differ by this much from noise alone); ``floor`` (what any every-step finiteness check that
stops a NaN before the update must do, and nothing else: a no-op forward pre-hook where the inputs
would be kept for the NaN replay, a step pre-hook running GradScaler's fused finiteness kernel over
the biases' gradients and reading its flag, and the loss kept); watched with the default profile;
watched with the ``minimal`` profile (every-step finiteness and gradient norms only); and plain
under ``torch.autograd.detect_anomaly``. The arms take turns in blocks of ``--block`` consecutive
steps (a training loop runs warm, one arm at a time), with the order of the blocks shuffled every
round (seeded), so machine load and the cache state an arm leaves behind hit all of them alike.
Step ``j`` of an arm's block is paired with step ``j`` of the plain block of the same round. Per
repeat, an arm's **median** is the median over its steps of the paired ratio (the steady-state
step), and its **mean** is its total time over the plain total (the amortized cost, with the
per-interval flush and the per-50-step samples that a median hides). The table gives the median
over repeats and, with ``--spread``, their range.

``--layout same`` (the default): every arm trains *one* model and optimizer, each watch attached
(``start``) for its own blocks only and detached (``close``) after them, the floor's hooks too, so
all arms run on the same tensors at the same addresses. A block is then one log interval (25
steps) unless ``--block`` says otherwise, so the flush inside a watched block reads a whole
interval, as in a continuous run, and the ``close`` after it (untimed) finds nothing left. ``--layout copies``: each arm trains its
own copy of the initial weights (the method of earlier rounds). Two identical plain copies differ
by up to 7% in one repeat from memory layout alone (docs/watch.md), which the watch does not
cause; with one model the A/A arm shows the timing noise alone. Each repeat builds a fresh model
(new memory layout).

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

ARMS = ("plain", "plain2", "floor", "default", "minimal", "anomaly")
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


def floor_hooks(model, opt) -> list:
    """The floor arm's hooks (their handles): a no-op forward pre-hook (where the watch keeps the
    inputs) and a step pre-hook running the fused finiteness kernel over the biases' gradients and
    reading its flag. What any every-step check that stops a NaN before the update must do."""
    vectors = [p for p in model.parameters() if p.dim() == 1]
    found = torch.zeros(1, device=vectors[0].device if vectors else "cpu")
    unit = torch.ones_like(found)
    view = found.numpy() if found.device.type == "cpu" else None  # read as the watch reads it

    def flag(optimizer, args, kwargs):
        grads = [p.grad for p in vectors if p.grad is not None]
        if grads:
            torch._amp_foreach_non_finite_check_and_unscale_(grads, found, unit)
            return None if (view[0] if view is not None else found.item()) == 0 else None

    return [model.register_forward_pre_hook(lambda module, args, kwargs: None, with_kwargs=True),
            opt.register_step_pre_hook(flag)]


class _Arm:
    """One arm: the model and optimizer it trains, and what it attaches for its own blocks."""

    def __init__(self, kind, model, opt, name):
        self.kind, self.model, self.opt = kind, model, opt
        self.watch = None
        self.kept = []  # the floor arm keeps its losses as w.step does (25 at a time)
        self._handles = []
        if kind in ("default", "minimal"):
            self.watch = nw.watch(model, opt, profile=kind, name=name, on_event=lambda e: None,
                                  raise_on_stop=False)

    def attach(self):
        """Before the arm's block: its watch started, or the floor's hooks registered."""
        if self.watch is not None:
            self.watch.start()
        elif self.kind == "floor":
            self._handles = floor_hooks(self.model, self.opt)

    def detach(self):
        """After the block: the watch closed (its hooks removed), the floor's hooks removed."""
        if self.watch is not None:
            self.watch.close()
        for h in self._handles:
            h.remove()
        self._handles = []

    def after_step(self, loss):
        if self.watch is not None:
            self.watch.step(loss)
        elif self.kind == "floor":
            self.kept.append(loss.data)
            if len(self.kept) == 25:
                self.kept.clear()


def _arms(model, device, name, with_anomaly, layout="same"):
    """{arm: _Arm}: one model and optimizer shared by every arm (``same``), or a fresh copy each
    (``copies``)."""
    shared = None
    arms = {}
    for v in ARMS if with_anomaly else ARMS[:-1]:
        if layout == "copies" or shared is None:
            m = copy.deepcopy(model).to(device)
            shared = (m, torch.optim.Adam(m.parameters(), lr=1e-3))
        arms[v] = _Arm(v, *shared, name)
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
             no_gc=False, seed=0, layout="same"):
    """One repeat on a fresh model (or fresh copies): {arm: [[seconds per step] per timed round]}."""
    x, y = (t.to(device) for t in batch)
    arms = _arms(model, device, name, with_anomaly, layout)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = {v: [] for v in arms}
    order = list(arms)
    shuffle = random.Random(seed).shuffle  # Python's RNG: torch's is the models' business
    rounds_warm, rounds = -(-warmup // block), max(1, -(-steps // block))
    gc_was = gc.isenabled()
    if layout == "copies":  # each watch stays attached to its own copy for the whole repeat
        for arm in arms.values():
            arm.attach()
    try:
        for r in range(rounds_warm + rounds):
            # a new order every round: a rotation would keep each arm behind the same one, and the
            # arm before leaves the caches in its own state (in a trial here, a fixed order put the A/A at 1.04x)
            shuffle(order)
            if no_gc:
                gc.collect()
                gc.disable()
            for v in order:
                arm = arms[v]
                if layout == "same":
                    arm.attach()
                anomaly = v == "anomaly"
                ts = []
                try:
                    for _ in range(block):
                        sync()
                        t0 = clock()
                        loss = _train_step(arm.model, arm.opt, loss_fn, x, y, anomaly)
                        arm.after_step(loss)
                        sync()
                        ts.append(clock() - t0)
                finally:
                    if layout == "same":
                        arm.detach()
                if r >= rounds_warm:
                    times[v].append(ts)
            if no_gc and gc_was:
                gc.enable()
    finally:
        if gc_was:
            gc.enable()
        if layout == "copies":
            for arm in arms.values():
                arm.detach()
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
          repeats=3, block=10, with_anomaly=True, no_gc=False, layout="same"):
    """(median plain step seconds over repeats, {arm: {"median": [...], "mean": [...]}}, one
    value per repeat)."""
    base, per = [], {}
    for rep in range(repeats):
        times = run_once(model, batch, loss_fn, device, name, steps, warmup, block, clock,
                         with_anomaly, no_gc, seed=rep, layout=layout)
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
    p.add_argument("--block", type=int, default=None,
                   help="consecutive steps per arm and turn (default: 25, one log interval, with "
                   "--layout same; 10 with --layout copies)")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ", ".join(MODELS))
    p.add_argument("--device", default="both", choices=["cpu", "cuda", "both"])
    p.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                   help="cpu: CPU time of the training thread (time.thread_time), immune to other "
                   "processes on a shared machine; wall: time.perf_counter")
    p.add_argument("--spread", action="store_true", help="also print each cell's range over repeats")
    p.add_argument("--no-anomaly", action="store_true", help="skip the detect_anomaly arm")
    p.add_argument("--layout", default="same", choices=["same", "copies"],
                   help="same: every arm trains one model, each watch attached for its own blocks; "
                   "copies: one copy of the model per arm")
    p.add_argument("--no-gc", action="store_true",
                   help="garbage collector off in the timed steps (every arm), on between rounds")
    args = p.parse_args(argv)
    wanted = {m.strip().lower() for m in args.models.split(",") if m.strip()}
    if wanted - set(MODELS):
        p.error(f"unknown model(s) {', '.join(sorted(wanted - set(MODELS)))}: use {', '.join(MODELS)}")
    if args.block is None:
        args.block = 25 if args.layout == "same" else 10
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
          f"repeats{' (range)' if args.spread else ''}; gc {'off' if args.no_gc else 'on'}; "
          f"layout {args.layout}")
    cols = [("plain2", "median", "A/A"), ("floor", "median", "floor"), ("default", "median", "default"),
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
                              with_anomaly=not args.no_anomaly, no_gc=args.no_gc,
                              layout=args.layout)
            cells = " ".join(f"{_cell(per[v][k], args.spread):>{w}}" for v, k, _ in cols)
            print(f"{device:<6} {name:<12} {base * 1e3:>9.3f} {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
