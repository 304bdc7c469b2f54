"""The overhead benchmarks run and print their tables (a few steps; the figures are not judged)."""

from __future__ import annotations

import subprocess
import sys


def _run(*args: str) -> str:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300,
                       env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_the_parts_benchmark_prints_every_arm():
    out = _run("benchmarks/watch_overhead_parts.py", "--model", "mlp", "--rounds", "3", "--norm-every", "25")
    for arm in ("floor", "minimal", "default", "minimal:norm_every=25", "default:norm_every=25"):
        assert any(line.split()[0] == arm and line.rstrip().endswith("x") for line in out.splitlines()
                   if line.strip()), out


def test_the_phase_split_prints_every_arm_and_phase():
    out = _run("benchmarks/watch_overhead_parts.py", "--model", "mlp", "--rounds", "6", "--phases")
    lines = {line.split()[0]: line for line in out.splitlines()[2:] if line.strip()}
    assert set(lines) == {"plain", "plain2", "floor", "minimal", "default"}, out
    for arm, line in lines.items():
        assert line.rstrip().endswith("x") and line.count("(") == 5, line


def test_the_hook_call_benchmark_prints_every_callable():
    out = _run("benchmarks/hook_call_cost.py", "--repeats", "2", "--number", "50")
    names = [line[:20].strip() for line in out.splitlines()[2:] if line.strip()]
    assert names == ["none", "lambda", "bound method", "functools.partial", "WatchHook",
                     "proxy method", "proxy __call__"], out
