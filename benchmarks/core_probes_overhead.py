"""Time of the four core probes (params, data, nan, gradients) against the plain passes they need.

The plain baseline is what a hand-written script would run to answer the same questions: build the
model and optimizer, take the probe batches, one forward for the layer table, one for the output
width, and ``nan``'s 20 training steps (forward, loss, backward, step); ``gradients`` shares those
steps. Both sides use the same, already loaded batches, in one process, alternating, after a
warm-up (torch's first optimizer construction imports torch._dynamo, seconds that neither side
should be charged). Target (issue #2): nndiag under 2x the plain passes.

    NNDIAG_DATA_DIR=../shared/data python benchmarks/core_probes_overhead.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import nndiag  # noqa: E402
from nndiag.loading import load_model_file  # noqa: E402
from nndiag.probes.nan import NanConfig  # noqa: E402
from nndiag.runner import RunOptions, check_subject  # noqa: E402
from nndiag.workbench import Workbench  # noqa: E402

CORE = ("params", "data", "nan", "gradients")


def plain_passes(subject, batches) -> None:
    """What the four probes need, written by hand with no instrumentation."""
    torch.manual_seed(0)
    model = subject.model_factory()
    opt = subject.optimizer_factory(model.parameters())
    with torch.no_grad():
        model(batches[0][0])  # layer table
        model(batches[0][0])  # output width for the target-range check
    for step in range(NanConfig().steps):
        x, y = batches[step % len(batches)]
        opt.zero_grad()
        loss = subject.loss_fn(model(x), y)
        loss.backward()
        opt.step()
    float(loss.detach())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "reference_models" / "mlp.py"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))

    subject = load_model_file(args.model)
    batches = Workbench(subject).probe_batches(256)  # loaded once, shared by both sides
    subject.batches = lambda: batches  # nndiag reads the same in-memory batches

    plain_passes(subject, batches)  # warm-up both sides
    check_subject(subject, RunOptions(probes=CORE))
    plain_t, probe_t, per_probe = [], [], {p: [] for p in CORE}
    for _ in range(args.repeats):
        t = time.perf_counter()
        plain_passes(subject, batches)
        plain_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        report = check_subject(subject, RunOptions(probes=CORE))
        probe_t.append(time.perf_counter() - t)
        for r in report.results:
            per_probe[r.probe].append(r.seconds)
    plain, probes = statistics.median(plain_t), statistics.median(probe_t)
    print(f"model: {args.model}  ({sum(len(b[0]) for b in batches)} samples in {len(batches)} batches, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats})\n")
    print("| what | seconds |")
    print("| --- | --- |")
    print(f"| plain passes (2 forwards + {NanConfig().steps} training steps) | {plain:.3f} |")
    for p in CORE:
        print(f"| probe `{p}` | {statistics.median(per_probe[p]):.3f} |")
    print(f"| nndiag, the four probes together | {probes:.3f} |")
    print(f"| **ratio nndiag / plain** | **{probes / plain:.2f}x** (target < 2x) |")
    print(f"\nstatus: {report.status.value}; nndiag {nndiag.__version__}")


if __name__ == "__main__":
    main()
