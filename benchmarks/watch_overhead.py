"""The watch's cost per training step, side by side with the same plain step, in one process.

    python benchmarks/watch_overhead.py [--steps 100] [--warmup 20] [--device cpu|cuda|both]

For each model (the reference MLP, CNN and LSTM, and a small Transformer encoder) four copies of
the same initial weights train on the same batch, one step each in turn, every iteration, with
the order rotated so machine load hits all of them alike: plain; watched with the default profile;
watched with the ``minimal`` profile (every-step finiteness and gradient norms only); and plain
under ``torch.autograd.detect_anomaly``. Each row gives the plain step's median time and every
variant's median, over iterations, of its step time over the plain step's in the same iteration.
The default profile samples per-layer statistics every 50 steps, which a median hides, so its mean
ratio (the amortized cost) is shown too. CPU runs use ``torch.set_num_threads(1)`` and, by default,
the CPU time of the training thread (a shared machine's other processes do not count); ``--clock
wall`` uses wall time. Nothing is asserted: the numbers are printed as measured.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import nndiag.watch as nw  # noqa: E402


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


def bench(name, model, batch, loss_fn, device, steps, warmup, clock=time.thread_time):
    """(median plain step seconds, {variant: median of the per-iteration ratio to plain},
    the default profile's mean ratio). Ratios are paired per iteration, so a slow moment of the
    machine hits a variant and its plain step alike."""
    x, y = (t.to(device) for t in batch)
    variants = {}
    for v in ("plain", "default", "minimal", "anomaly"):
        m = copy.deepcopy(model).to(device)
        opt = torch.optim.Adam(m.parameters(), lr=1e-3)
        w = None
        if v in ("default", "minimal"):
            w = nw.watch(m, opt, profile=v, name=name, on_event=lambda e: None,
                         raise_on_stop=False).start()
        variants[v] = (m, opt, w)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    times = {v: [] for v in variants}
    order = list(variants)
    for i in range(warmup + steps):
        order = order[1:] + order[:1]  # rotate: no variant always runs first
        for v in order:
            m, opt, w = variants[v]
            sync()
            t0 = clock()
            ctx = torch.autograd.detect_anomaly(check_nan=True) if v == "anomaly" else _Null()
            with ctx:
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(m(x), y)
                loss.backward()
                opt.step()
            if w is not None:
                w.step(loss)
            sync()
            if i >= warmup:
                times[v].append(clock() - t0)
    for _, _, w in variants.values():
        if w is not None:
            w.close()
    plain = times["plain"]
    ratios = {v: statistics.median(a / max(b, 1e-9) for a, b in zip(t, plain)) for v, t in times.items()}
    return statistics.median(plain), ratios, statistics.mean(times["default"]) / statistics.mean(plain)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def main(argv=None) -> int:
    """Print the table."""
    import warnings

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=100, help="measured steps per variant (>= 50)")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--device", default="both", choices=["cpu", "cuda", "both"])
    p.add_argument("--clock", default="cpu", choices=["cpu", "wall"],
                   help="cpu: CPU time of the training thread (time.thread_time), immune to other "
                   "processes on a shared machine; wall: time.perf_counter")
    args = p.parse_args(argv)
    warnings.filterwarnings("ignore")  # detect_anomaly warns that it is slow, every step
    devices = ["cpu"] + (["cuda"] if args.device != "cpu" and torch.cuda.is_available() else [])
    if args.device == "cuda":
        devices = [d for d in devices if d == "cuda"]
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    print(f"torch {torch.__version__}; {args.clock} clock; median of {args.steps} steps after "
          f"{args.warmup} warm-up; ratio = median over iterations of variant / plain step")
    print(f"{'device':<6} {'model':<12} {'plain ms':>9} {'default':>8} {'default':>8} {'minimal':>8} "
          f"{'anomaly':>8}")
    print(f"{'':<6} {'':<12} {'':>9} {'median':>8} {'mean':>8} {'median':>8} {'median':>8}")
    for device in devices:
        if device == "cpu":
            torch.set_num_threads(1)
        for name, model, batch, loss_fn in cases():
            use = clock if device == "cpu" else time.perf_counter  # CUDA: wall time after sync
            base, r, mean_ratio = bench(name, model, batch, loss_fn, device, args.steps, args.warmup, use)
            print(f"{device:<6} {name:<12} {base * 1e3:>9.3f} {r['default']:>7.3f}x "
                  f"{mean_ratio:>7.3f}x {r['minimal']:>7.3f}x {r['anomaly']:>7.3f}x", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
