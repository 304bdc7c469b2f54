"""The watch's cost per step inside a DDP job (gloo, CPU), side by side with a plain DDP step.

    python benchmarks/watch_ddp_overhead.py [--world 2] [--steps 100] [--warmup 20] [--block 10]
                                            [--models mlp,cnn] [--clock wall|cpu]

Spawns ``--world`` gloo ranks on this machine (free port chosen here). On every rank three DDP
copies of the same model train on the rank's half (quarter, ...) of the same global batch of 64:
plain; plain again (the A/A control: what two identical arms differ by from noise alone); watched
with the default profile; watched with the ``minimal`` profile. The copies take
turns in blocks of ``--block`` steps, with the order rotated every round, all in the same
processes, so machine load hits them alike. A step's time is wall time (a DDP step waits for the
other ranks, which CPU time would not count; ``--clock cpu`` takes the training thread's CPU time
instead, steadier on a loaded machine), and the job's step time is the slowest rank's. The
table gives, per variant, the median over steps of the paired ratio (its step ``j`` over the plain
block's step ``j`` of the same round) and the mean ratio (total over plain total: the amortized
cost, with the per-interval exchange and the samples a median hides). It also prints the median
time of one 1-element ``all_reduce`` on the same group: what a per-step flag would cost. Nothing is
asserted: the numbers are printed as measured.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # dist_helpers: spawned gloo ranks, free port

ARMS = ("plain", "plain2", "default", "minimal")  # plain2: the A/A control


def _model(name: str):
    import torch

    from reference_models import cnn, mlp

    torch.manual_seed(0)
    model = (mlp if name == "mlp" else cnn).build_model()
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(64, 1, 28, 28, generator=g), torch.randint(0, 10, (64,), generator=g))
    return model, batch


def _flag_cost(n: int = 100) -> float:
    """Median seconds of one 1-element all_reduce (MAX) on the default group."""
    import torch
    import torch.distributed as dist

    t, out = torch.zeros(1), []
    for _ in range(n):
        t0 = time.perf_counter()
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def _worker(rank: int, world: int, name: str, steps: int, warmup: int, block: int,
            clock_name: str = "wall") -> dict:
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F

    import nndiag.watch as nw

    model, (x, y) = _model(name)
    x, y = x[rank::world], y[rank::world]
    clock = time.perf_counter if clock_name == "wall" else time.thread_time
    arms = {}
    for v in ARMS:
        ddp = torch.nn.parallel.DistributedDataParallel(copy.deepcopy(model))
        opt = torch.optim.Adam(ddp.parameters(), lr=1e-3)
        w = None if v.startswith("plain") else nw.watch(ddp, opt, profile=v, on_event=lambda e: None,
                                               raise_on_stop=False).start()
        arms[v] = (ddp, opt, w)
    times = {v: [] for v in ARMS}
    order = list(ARMS)
    warm_rounds, rounds = -(-warmup // block), max(1, -(-steps // block))
    for r in range(warm_rounds + rounds):
        order = order[1:] + order[:1]
        for v in order:
            ddp, opt, w = arms[v]
            ts = []
            for _ in range(block):
                t0 = clock()
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(ddp(x), y)
                loss.backward()
                opt.step()
                if w is not None:
                    w.step(loss)
                ts.append(clock() - t0)
            if r >= warm_rounds:
                times[v].append(ts)
    for _, _, w in arms.values():
        if w is not None:
            w.close()
    statuses = {v: [f"{res.probe} {res.status.value}" for res in arms[v][2].report.subjects[0].results
                    if res.status.value != "pass"] for v in ("default", "minimal")}
    gathered = [None] * world
    dist.all_gather_object(gathered, times)
    return {"times": gathered, "flag": _flag_cost(), "statuses": statuses}


def _job_times(per_rank: list[dict]) -> dict:
    """The job's step time: the slowest rank's, step by step."""
    out = {}
    for v in ARMS:
        blocks = zip(*(r[v] for r in per_rank))
        out[v] = [[max(ts) for ts in zip(*blk)] for blk in blocks]
    return out


def summarise(times: dict) -> tuple[float, dict]:
    """(median plain step seconds, {arm: (median paired ratio, mean ratio)})."""
    plain = [t for blk in times["plain"] for t in blk]
    out = {}
    for v in ARMS[1:]:
        ratios = [a / b for blk, pblk in zip(times[v], times["plain"]) for a, b in zip(blk, pblk)]
        out[v] = (statistics.median(ratios), sum(t for blk in times[v] for t in blk) / sum(plain))
    return statistics.median(plain), out


def main(argv=None) -> int:
    """Print the markdown table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--world", type=int, default=2, help="gloo ranks to spawn (2 or 4)")
    p.add_argument("--steps", type=int, default=100, help="timed steps per variant (>= 50)")
    p.add_argument("--warmup", type=int, default=20, help="steps per variant before the timed ones")
    p.add_argument("--block", type=int, default=10, help="consecutive steps per variant and turn")
    p.add_argument("--models", default="mlp,cnn", help="comma-separated subset of mlp, cnn")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: what the job waits (default); cpu: the training thread's CPU time "
                        "(steadier on a loaded machine; leaves out the time spent waiting for ranks)")
    a = p.parse_args(argv)
    import torch
    from dist_helpers import run_ranks

    print(f"torch {torch.__version__}; {a.world} gloo ranks on CPU, 1 thread each; {a.clock} clock, "
          f"the slowest rank per step; median of {a.steps} steps after {a.warmup} warm-up; ratio = "
          "median over steps of variant / plain DDP step")
    print()
    print("| model | ranks | plain DDP step (ms) | A/A control, median | default, median | "
          "default, mean (amortized) | minimal, median | minimal, mean | 1-element all_reduce (ms) "
          "| verdicts |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in a.models.split(","):
        got = run_ranks(_worker, name, a.steps, a.warmup, a.block, a.clock, world=a.world,
                        timeout=1200)
        base, out = summarise(_job_times(got[0]["times"]))
        flag = statistics.median(g["flag"] for g in got)
        verdicts = "; ".join(f"{v}: {', '.join(s) or 'all pass'}" for v, s in got[0]["statuses"].items())
        print(f"| {name.upper()} | {a.world} | {base * 1e3:.3f} | {out['plain2'][0]:.3f}x | "
              f"{out['default'][0]:.3f}x | "
              f"{out['default'][1]:.3f}x | {out['minimal'][0]:.3f}x | {out['minimal'][1]:.3f}x | "
              f"{flag * 1e3:.3f} | {verdicts} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
