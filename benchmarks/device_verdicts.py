"""Do the verdicts of ``nndiag check`` on a device equal the CPU run's? One markdown table.

    python benchmarks/device_verdicts.py [--device cuda|auto|cpu] [--quick] [--jobs N]
                                         [--files F ...] [--out DIR] [--timeout S]

Every reference model (``reference_models/*.py``, ``reference_models/broken/*.py``) and every zoo
file (``reference_models/zoo/healthy``, ``reference_models/zoo/bugs``) is checked twice with the
command a user runs, ``nndiag check FILE --json PATH --threads 1``: once with ``--device cpu``
and once with ``--device DEVICE`` (default ``cuda``), each in a fresh process. The table has one
row per file: whether the verdicts are equal (the top-level status, every probe's status, a
file-level error), the probes that differ (``probe: cpu -> cuda``), and the time of each run:
the sum of the probes' own seconds from the JSON report (loading the file, starting Python and
torch are not counted). ``--quick`` checks a small fixed subset (a few seconds per file on a CPU),
so the script can be exercised without a GPU: ``--device cpu`` (or ``auto`` on a machine without
one) then compares two CPU runs, which tests the script and the runs' repeatability.

Exit status: 0 when every file's verdicts are equal, 1 when any differ or a run failed to give a
report (its row says why), 2 for a usage error (``--device cuda`` without a GPU).
benchmarks/gpu_check.sh runs this with the GPU-marked tests and the watch overhead benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: --quick: small files that between them run every probe, a NaN the replay locates, BatchNorm,
#: token ids and a user's own train_step; a few seconds each on one CPU thread.
QUICK = ("reference_models/xor.py", "reference_models/broken/mlp_log_softmax_nan.py",
         "reference_models/zoo/healthy/batchnorm_batch_size_2.py",
         "reference_models/zoo/healthy/wine_sgd_momentum_train_step.py",
         "reference_models/zoo/bugs/tokens_bag_classifier.py")


def all_files() -> list[str]:
    """The reference models, the broken reference models and every zoo file, repo-relative."""
    root = REPO / "reference_models"
    found = [p for p in sorted(root.glob("*.py")) if p.stem not in ("__init__", "data", "train")]
    for part in ("broken", "zoo/healthy", "zoo/bugs"):
        # _bases are shared modules, symptoms.py the zoo validator's checks: not model files
        found += [p for p in sorted((root / part).glob("*.py"))
                  if not p.name.startswith("_") and p.stem != "symptoms"]
    return [str(p.relative_to(REPO)) for p in found]


@dataclass
class Run:
    """One ``nndiag check`` of one file on one device: its verdicts and times."""

    status: str = ""  # the report's top-level status, or why there is no report
    probes: dict[str, str] = field(default_factory=dict)  # probe id -> status
    error: str = ""  # a file-level error (cannot be checked)
    probe_seconds: float = 0.0  # the sum of the probes' own times
    wall_seconds: float = 0.0  # the whole command, Python and torch start-up included
    exit_code: int | None = None

    @property
    def ok(self) -> bool:
        """True when the command gave a JSON report."""
        return bool(self.status) and not self.status.startswith("no report")


def check_file(path: str, device: str, role: str, out_dir: Path, timeout: float) -> Run:
    """``nndiag check PATH --device DEVICE --json ...`` in a fresh process, read back; ``role``
    ("base" or "other") names the report file, so two runs on one device do not collide."""
    tag = path.replace("/", "__").removesuffix(".py")
    report = out_dir / f"{tag}.{role}.{device.replace(':', '_')}.json"
    cmd = [sys.executable, "-m", "nndiag.cli", "check", path, "--device", device,
           "--json", str(report), "--threads", "1", "-q"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return Run(status=f"no report: timed out after {timeout:g} s",
                   wall_seconds=time.perf_counter() - start)
    run = Run(wall_seconds=time.perf_counter() - start, exit_code=done.returncode)
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        run.status = f"no report: exit {done.returncode}: {tail[0][:160]}"
        return run
    return read_report(data, run)


def read_report(data: dict, run: Run | None = None) -> Run:
    """The verdicts and probe times of one JSON report (``nndiag check --json``)."""
    run = run or Run()
    run.status = str(data.get("status", ""))
    run.error = str(data.get("error") or data.get("load_error") or "")
    for r in data.get("results", []):
        run.probes[str(r["probe"])] = str(r["status"])
        run.probe_seconds += float(r.get("seconds") or 0.0)
    return run


def differences(base: Run, other: Run, device: str) -> list[str]:
    """What differs between the CPU run and the other device's run ([] when the verdicts agree)."""
    if not base.ok or not other.ok:
        return [f"cpu: {base.status}" if not base.ok else f"{device}: {other.status}"]
    diffs = []
    if base.error != other.error and (base.error or other.error):
        diffs.append("file error: " + (f"{device}: {other.error[:120]}" if other.error
                                       else f"cpu: {base.error[:120]}"))
    for probe in list(dict.fromkeys([*base.probes, *other.probes])):
        a, b = base.probes.get(probe, "-"), other.probes.get(probe, "-")
        if a != b:
            diffs.append(f"{probe}: {a} -> {b}")
    if base.status != other.status and not diffs:
        diffs.append(f"status: {base.status} -> {other.status}")
    return diffs


def table(rows: list[tuple[str, Run, Run]], device: str) -> str:
    """The markdown table: file, verdicts equal, what differs, CPU and device probe seconds."""
    other = device if device != "cpu" else "cpu again"  # --device cpu: two CPU runs compared
    lines = [f"| file | verdicts equal | differing (cpu -> {device}) | CPU s | {other} s |",
             "| --- | --- | --- | ---: | ---: |"]
    for path, base, other in rows:
        diffs = differences(base, other, device)
        cell = "; ".join(diffs).replace("|", "/") if diffs else ""
        lines.append(f"| {path} | {'no' if diffs else 'yes'} | {cell} | {base.probe_seconds:.1f} | "
                     f"{other.probe_seconds:.1f} |")
    return "\n".join(lines)


def summary(rows: list[tuple[str, Run, Run]], device: str) -> str:
    """One line: how many files agree, and the total probe time on each device."""
    same = sum(not differences(b, o, device) for _, b, o in rows)
    cpu_s = sum(b.probe_seconds for _, b, _ in rows)
    dev_s = sum(o.probe_seconds for _, _, o in rows)
    return (f"{same} of {len(rows)} files give the same verdicts on cpu and {device}; probe time "
            f"{cpu_s:.1f} s on cpu, {dev_s:.1f} s on {device}")


def device_available(device: str) -> str:
    """'' when ``device`` can run here, else why not."""
    if not device.startswith("cuda"):
        return ""
    import torch

    return "" if torch.cuda.is_available() else (
        f"--device {device} was asked for, but torch sees no CUDA GPU on this machine "
        f"(torch {torch.__version__}). Run this on a GPU machine, or use --device cpu "
        "(or --device auto) to exercise the script.")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="compared with --device cpu (cuda, auto, cpu)")
    p.add_argument("--quick", action="store_true", help=f"only the {len(QUICK)} quick files")
    p.add_argument("--files", nargs="+", help="these files instead (repo-relative paths)")
    p.add_argument("--jobs", type=int, default=2, help="checks run at the same time (default 2)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per check (default 900)")
    p.add_argument("--out", type=Path, help="keep the JSON reports in this folder")
    args = p.parse_args(argv)
    why = device_available(args.device)
    if why:
        print(why, file=sys.stderr)
        return 2
    files = list(args.files) if args.files else (list(QUICK) if args.quick else all_files())
    out_dir = args.out or Path(tempfile.mkdtemp(prefix="nndiag-device-verdicts-"))
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(f, d, role) for f in files for d, role in (("cpu", "base"), (args.device, "other"))]
    done = []

    def one(job: tuple[str, str, str]) -> Run:
        run = check_file(*job, out_dir, args.timeout)
        done.append(job)  # progress on stderr: the full run takes a while
        print(f"[{len(done)}/{len(jobs)}] {job[0]} --device {job[1]}: {run.status} "
              f"({run.wall_seconds:.1f} s)", file=sys.stderr, flush=True)
        return run

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(one, jobs))
    rows = [(f, runs[2 * i], runs[2 * i + 1]) for i, f in enumerate(files)]
    print(table(rows, args.device))
    print()
    print(summary(rows, args.device))
    print(f"JSON reports: {out_dir}")
    return 0 if all(not differences(b, o, args.device) for _, b, o in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
