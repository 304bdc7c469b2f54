"""Time ``nndiag check`` with every probe on each reference model; per-probe seconds in a table.

Targets (issue #3): the reference MLP under 15 s, every reference model under 60 s, on a 2-core
machine. Each model is checked in-process with ``nndiag.check(path)`` (the total includes loading
the file and its data, as a user's run would), and with ``--cli`` also as ``nndiag check FILE
--json -`` in a fresh process (adds Python and torch start-up).

    NNDIAG_DATA_DIR=../shared/data python benchmarks/check_all_probes.py [--cli] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nndiag  # noqa: E402

MODELS = ("xor", "mlp", "cnn", "lstm", "seq_classifier")
TARGET_S = {"mlp": 15.0}
DEFAULT_TARGET_S = 60.0


def run_cli(path: Path, seed: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "nndiag.cli", "check", str(path), "--json", os.devnull,
                    "--seed", str(seed)], check=False, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli", action="store_true", help="also time the nndiag command")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows, probes = [], []
    for name in args.models.split(","):
        path = REPO / "reference_models" / f"{name}.py"
        if not path.exists():
            print(f"# {name}: {path} does not exist, skipped", file=sys.stderr)
            continue
        start = time.perf_counter()
        report = nndiag.check(path, seed=args.seed)
        total = time.perf_counter() - start
        subject = report.subjects[0]
        if subject.load_error:
            print(f"# {name}: {subject.load_error}", file=sys.stderr)
            continue
        per = {r.probe: (r.seconds, r.status.value) for r in subject.results}
        probes += [p for p in per if p not in probes]
        cli = run_cli(path, args.seed) if args.cli else None
        rows.append((name, total, cli, per))

    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s), "
          f"seed {args.seed}\n")
    head = ["model", "total s (in-process)"] + (["CLI s"] if args.cli else []) + ["target s", "ok"] + probes
    print("| " + " | ".join(head) + " |")
    print("|" + " --- |" * len(head))
    for name, total, cli, per in rows:
        target = TARGET_S.get(name, DEFAULT_TARGET_S)
        worst = max(total, cli or 0.0)
        cells = [name, f"{total:.1f}"] + ([f"{cli:.1f}"] if args.cli else []) + [
            f"{target:g}", "yes" if worst < target else "NO"]
        cells += [f"{per[p][0]:.2f} {per[p][1]}" if p in per else "-" for p in probes]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
