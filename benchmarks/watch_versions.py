"""Two versions of the watch side by side, in one process, on one model.

    OMP_NUM_THREADS=1 python benchmarks/watch_versions.py --old REV [--model mlp] [--rounds 500]
                                                         [--profile minimal]

``--old`` is a git revision of this repository. Its ``nndiag`` package is exported (``git
archive``) into a temporary folder as ``nndiag_old``, with its imports renamed, so the working
tree's watch and the old one load side by side. Four arms train *one* model and optimizer in
blocks of 10 steps, in an order shuffled every round: plain, plain again (the A/A control), the old
watch and the new one, each watch attached for its own blocks only. An arm's figure per round is
the median of its block's steady steps (no full norms, flush or sample, as in
``watch_overhead_parts.py --phases``) minus plain's in the same round. The table gives the median
over rounds, the interquartile range and the ratio, and the last line gives new minus old per
round. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import importlib
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import nndiag.watch as new_watch  # noqa: E402
from watch_overhead_parts import _case, block_medians  # noqa: E402

_IMPORT = re.compile(r"\bnndiag(?=[.\s])")


def export_old(rev: str, into: Path) -> Path:
    """``rev``'s nndiag as the package ``nndiag_old`` under ``into`` (imports renamed)."""
    archive = into / "old.tar"
    subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), rev, "nndiag"], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    pkg = into / "nndiag_old"
    (into / "nndiag").rename(pkg)
    for py in pkg.rglob("*.py"):
        text = py.read_text()
        text = re.sub(r"^(\s*)(from|import) nndiag\b", r"\1\2 nndiag_old", text, flags=re.M)
        py.write_text(_IMPORT.sub("nndiag_old", text) if "nndiag." in text else text)
    return pkg


def main(argv=None) -> int:
    """Print the table."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--old", required=True, help="the git revision to compare the working tree with")
    p.add_argument("--model", default="mlp", choices=["mlp", "cnn", "lstm", "transformer"])
    p.add_argument("--rounds", type=int, default=500, help="timed rounds of 10 steps per arm")
    p.add_argument("--profile", default="minimal", choices=["minimal", "default"])
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        export_old(args.old, Path(tmp))
        sys.path.insert(0, tmp)
        old_watch = importlib.import_module("nndiag_old.watch")
        model, (x, y), loss_fn = _case(args.model)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        kw = dict(profile=args.profile, on_event=lambda e: None, raise_on_stop=False)
        arms = {"plain": (None, None), "plain2": (None, None),
                "old": (None, old_watch.watch(model, opt, **kw)), "new": (None, new_watch.watch(model, opt, **kw))}
        med = block_medians(model, opt, x, y, loss_fn, arms, args.rounds)
    base = statistics.median(med["plain"])
    print(f"torch {torch.__version__}; {args.model}; {args.profile}; old = {args.old}, new = the working "
          f"tree; {args.rounds} rounds; plain step {base:.1f} us; steady steps, us over plain per round")
    rows = {a: [m - b for m, b in zip(med[a], med["plain"])] for a in ("plain2", "old", "new")}
    rows["new - old"] = [n - o for n, o in zip(med["new"], med["old"])]
    for arm, d in rows.items():
        d = sorted(d)
        n = len(d)
        ratio = f"{1 + statistics.median(d) / base:.3f}x" if arm != "new - old" else ""
        print(f"{arm:10s} {statistics.median(d):+8.1f} us   IQR {d[n // 4]:+.1f}..{d[(3 * n) // 4]:+.1f}  {ratio}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
