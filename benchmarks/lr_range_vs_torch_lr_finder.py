"""nndiag's ``lr-range`` probe against torch-lr-finder on the reference models, side by side.

For each reference model (``reference_models/{xor,mlp,cnn,lstm,seq_classifier}.py``, those that load)
both tools get the same model (built under seed 0), the same optimizer (the file's
``build_optimizer``), the same already loaded batches (nndiag's probe batches, cycled) and the same
sweep: 1e-7 to 10 over 100 iterations, exponential. Each tool keeps its own smoothing and stop rule
(torch-lr-finder: EMA weight 0.05 and 5 x best; nndiag: bias-corrected EMA 0.98, 4 x best, or the
loss back above its untrained level) and its own suggestion (torch-lr-finder: steepest gradient of
the smoothed loss per iteration, first 10 and last 5 points trimmed; nndiag: valley, steepest against
log LR, minimum/10). The two run alternately in one process after a warm-up (the first optimizer
construction imports torch._dynamo, which neither side should pay), ``--repeats`` times; the table
shows the median. Target: nndiag no slower than torch-lr-finder.

    pip install -r benchmarks/requirements.txt
    NNDIAG_DATA_DIR=../shared/data python benchmarks/lr_range_vs_torch_lr_finder.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nndiag.loading import load_model_file  # noqa: E402
from nndiag.runner import RunOptions, check_subject  # noqa: E402
from nndiag.optimizers import default_optimizer  # noqa: E402
from nndiag.workbench import Workbench  # noqa: E402

MODELS = ("xor", "mlp", "cnn", "lstm", "seq_classifier")
START, END, NUM_IT = 1e-7, 10.0, 100


def nndiag_run(subject) -> tuple[float, dict]:
    """Seconds of the lr-range probe alone (batches already loaded) and its metrics."""
    report = check_subject(subject, RunOptions(probes=["lr-range"], seed=0))
    (res,) = report.results
    if res.status.value == "error":
        raise RuntimeError(res.summary)
    return res.seconds, dict(res.metrics, status=res.status.value)


def tlf_run(subject, batches) -> tuple[float, dict]:
    """Seconds of torch-lr-finder's range_test on the same model, optimizer and batches."""
    import matplotlib

    matplotlib.use("Agg")
    from torch.utils.data import DataLoader
    from torch_lr_finder import LRFinder

    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = subject.model_factory()
    model.train()
    opt = (subject.optimizer_factory or default_optimizer)([p for p in model.parameters() if p.requires_grad])
    loader = DataLoader(batches, batch_size=None, shuffle=False)  # the same batches, cycled
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
        finder = LRFinder(model, opt, subject.loss_fn, device="cpu")
        start = time.perf_counter()
        finder.range_test(loader, start_lr=START, end_lr=END, num_iter=NUM_IT)
        seconds = time.perf_counter() - start
        try:
            _, suggestion = finder.plot(skip_start=10, skip_end=5, suggest_lr=True)
        except Exception:  # noqa: BLE001 - too few points for its suggestion
            suggestion = None
        finder.reset()
    import matplotlib.pyplot as plt

    plt.close("all")
    return seconds, {"steps": len(finder.history["lr"]), "suggestion": suggestion}


def fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {os.cpu_count()} CPU(s), "
          f"median of {args.repeats}; sweep {START:g}..{END:g}, {NUM_IT} iterations\n")
    print("| model | batches | nndiag s (steps) | torch-lr-finder s (steps) | time ratio | per-step ratio "
          "| configured lr | nndiag verdict | nndiag valley / steepest / min/10 | nndiag diverged at "
          "| torch-lr-finder suggestion |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |", flush=True)
    for name in args.models.split(","):
        path = REPO / "reference_models" / f"{name}.py"
        if not path.exists():
            print(f"# {name}: {path} does not exist, skipped", file=sys.stderr)
            continue
        subject = load_model_file(path)
        if subject.loss_fn is None:
            print(f"# {name}: no loss_fn (torch-lr-finder needs a criterion), skipped", file=sys.stderr)
            continue
        try:
            batches = Workbench(subject, seed=0).probe_batches(256)
        except Exception as exc:  # noqa: BLE001 - e.g. MNIST not found
            print(f"# {name}: data not available ({exc}), skipped", file=sys.stderr)
            continue
        subject.batches = lambda b=batches: b  # both tools see exactly these batches
        nndiag_run(subject)  # warm-up (imports, first optimizer)
        tlf_run(subject, batches)
        ours, theirs = [], []
        for _ in range(args.repeats):
            ours.append(nndiag_run(subject))
            theirs.append(tlf_run(subject, batches))
        to = statistics.median(s for s, _ in ours)
        tt = statistics.median(s for s, _ in theirs)
        m, t = ours[-1][1], theirs[-1][1]
        so, st = m["steps"], t["steps"]
        print(f"| {name} | {len(batches)} | {to:.2f} ({so}) | {tt:.2f} ({st}) | {to / tt:.2f} "
              f"| {(to / so) / (tt / st):.2f} | {fmt(m['configured_lr'])} | {m['status']} "
              f"| {fmt(m['suggested_lr_valley'])} / {fmt(m['suggested_lr_steepest'])} / "
              f"{fmt(m['suggested_lr_minimum'])} | {fmt(m['lr_diverged'])} | {fmt(t['suggestion'])} |",
              flush=True)

if __name__ == "__main__":
    main()
