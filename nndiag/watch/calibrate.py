"""How far a healthy run stays from each threshold: the measurement behind the watch's defaults.

    python -m nndiag.watch.calibrate reference_models/mlp.py [--epochs 1] [--seed 0] ...

trains each file's own setup under the watch (:mod:`nndiag.watch.driver`) and prints, per file,
the quantities the checks compare with their thresholds: the largest block-median loss over the
best so far (divergence), the largest and smallest per-layer gradient norm relative to its early
median (exploding/vanishing), the largest dead and saturated fractions, the update/weight ratio
range, and the spike count. docs/watch.md lists the numbers this printed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from typing import Any

from nndiag.watch.timeline import Timeline


def margins(tl: Timeline, block: int) -> dict[str, Any]:
    """The healthy-run quantities of ``tl`` (block = the log interval)."""
    def med(xs):
        xs = [x for x in xs if x == x and math.isfinite(x)]
        return statistics.median(xs) if xs else math.nan

    blocks = [med(tl.loss[i:i + block]) for i in range(0, tl.steps - block + 1, block)]
    best, worst_ratio = math.inf, 0.0
    for m in blocks:
        if best < math.inf and m == m:
            worst_ratio = max(worst_ratio, m / best)
        best = min(best, m)
    grow, fade, rel = 0.0, math.inf, math.inf
    layers = [(k, s, med(s[:2 * block])) for k, s in tl.layer_grad.items()]
    layers = [(k, s, e) for k, s, e in layers if e > 0]
    for i in range(2 * block, tl.steps - block + 1, block):
        fades = {k: med(s[i:i + block]) / e for k, s, e in layers}
        fades = {k: f for k, f in fades.items() if f == f}
        if not fades:
            continue
        last = list(fades.values())[-1]
        grow, fade = max(grow, max(fades.values())), min(fade, min(fades.values()))
        rel = min(rel, min(f / min(last, 1.0) for f in fades.values()))
    ratios = [v for s in tl.update_ratio.values() for v in s if v == v and v > 0]
    dead = [v for s in tl.dead.values() for v in s if v == v]
    sat = [v for s in tl.saturated.values() for v in s if v == v]
    return {"steps": tl.steps, "loss_over_best": worst_ratio, "grad_growth": grow,
            "grad_fade": fade if fade < math.inf else math.nan,
            "grad_fade_rel": rel if rel < math.inf else math.nan,
            "max_dead": max(dead, default=0.0), "max_saturated": max(sat, default=0.0),
            "update_ratio_min": min(ratios, default=math.nan),
            "update_ratio_max": max(ratios, default=math.nan)}


def main(argv: list[str] | None = None) -> int:
    """Print the margins of each file's healthy run as a table."""
    from nndiag.loading import load_model_file
    from nndiag.watch.driver import run_subject

    p = argparse.ArgumentParser(prog="python -m nndiag.watch.calibrate", description=__doc__.split("\n")[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--steps", type=int)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    cols = None
    from nndiag.errors import NndiagError

    for path in args.files:
        try:
            w = run_subject(load_model_file(path), steps=args.steps,
                            epochs=None if args.steps else args.epochs, seed=args.seed,
                            on_event=lambda e: None, raise_on_stop=False)
        except NndiagError as exc:  # one file that cannot be used must not end the table
            print(path.ljust(34) + f"  error: {exc}")
            continue
        row = margins(w.timeline, w.cfg.log_every)
        row["spikes"] = w.report.subjects[0].result("watch.loss").metrics.get("spikes", 0)
        row["status"] = str(w.report.subjects[0].status)
        if cols is None:
            cols = list(row)
            print("file".ljust(34) + "".join(c[:14].rjust(15) for c in cols))
        print(path.ljust(34) + "".join(_fmt(row[c]).rjust(15) for c in cols))
        sys.stdout.flush()
    return 0


def _fmt(v: Any) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    sys.exit(main())
