"""The measurement behind overfit's ``min_dropout_retention`` (docs/probes/overfit.md): on every
zoo file whose model has dropout modules, the retention each module has (the probe's own
:func:`nndiag.probes.overfit.dropout.check_dropout`, forced to run even where the batch is fitted
with dropout on, which is where the probe never needs it).

Usage::

    python benchmarks/dropout_retention.py --seeds 0 1 2 [zoo file substrings ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(path: str, seed: int) -> list[tuple[str, float, float, float, int]] | str:
    """(module, p, accuracy, retention, dropout-off steps) per dropout module, or why none."""
    import torch

    from nndiag.loading import load_model_file
    from nndiag.probe import ProbeContext
    from nndiag.probes.overfit import OverfitConfig
    from nndiag.probes.overfit.dropout import check_dropout, dropout_modules
    from nndiag.probes.overfit.fitting import shared_fit_run
    from nndiag.workbench import Workbench

    torch.set_num_threads(1)
    bench = Workbench(load_model_file(REPO / path), seed=seed)
    if not dropout_modules(bench.fresh_model()):
        return "no dropout module"
    ctx = ProbeContext(bench, {}, "overfit")
    cfg = OverfitConfig()
    run = shared_fit_run(ctx, cfg).run
    if run is None:
        return "batch too small"
    check = check_dropout(ctx, cfg, run)
    if check is None:
        return "not a classifier"
    if not check.off_fitted:
        return f"dropout off does not fit in {check.off_steps} steps"
    return [(name, p, acc, kept, check.off_steps) for name, (p, acc, kept) in check.retention.items()]


def main(argv: list[str] | None = None) -> int:
    """Print each dropout module's retention per zoo file and seed."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("files", nargs="*")
    args = ap.parse_args(argv)
    for kind in ("healthy", "bugs"):
        for path in json.loads((REPO / "reference_models" / "zoo" / kind / "manifest.json").read_text()):
            if args.files and not any(f in path for f in args.files):
                continue
            if "dropout" not in (REPO / path).read_text().lower():
                continue  # cheap pre-filter: no dropout in the source
            for seed in args.seeds:
                try:
                    rows = measure(path, seed)
                except Exception as exc:  # noqa: BLE001 - a file the measurement cannot run
                    rows = f"{type(exc).__name__}: {exc}"[:120]
                if isinstance(rows, str):
                    print(f"{kind:7s} {Path(path).stem:34s} s{seed} -- {rows}", flush=True)
                    continue
                for name, p, acc, kept, steps in rows:
                    print(f"{kind:7s} {Path(path).stem:34s} s{seed} {name:24s} p={p:<5g} "
                          f"acc={acc:.3f} retention={kept:.3f} off_steps={steps}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
