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


def test_the_overhead_table_has_a_row_per_model_and_a_cell_per_arm_in_both_layouts():
    for layout in ("same", "copies"):
        out = _run("benchmarks/watch_overhead.py", "--steps", "4", "--warmup", "2", "--repeats", "1",
                   "--block", "2", "--device", "cpu", "--models", "mlp,lstm", "--layout", layout)
        assert f"layout {layout}" in out.splitlines()[0], out
        header = out.splitlines()[1].split()
        assert header[4:] == ["A/A", "floor", "default", "default", "minimal", "minimal", "anomaly"], out
        rows = [line.split() for line in out.splitlines()[3:] if line.strip()]
        assert [r[1] for r in rows] == ["MLP", "LSTM"], out
        for r in rows:
            assert len(r) == 10 and all(c.endswith("x") for c in r[3:]), r


def test_the_same_layout_trains_one_model_and_each_arm_detaches_after_its_block():
    """Every arm trains one model; each watch (and the floor's hooks) is attached for its own
    block only, so the next arm's steps run on the bare model."""
    import pathlib

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "benchmarks"))
    import watch_overhead as wo

    model, (x, y), loss_fn = wo._reference("mlp")
    arms = wo._arms(model, "cpu", "MLP", with_anomaly=False, layout="same")
    shared = arms["plain"].model
    assert all(a.model is shared and a.opt is arms["plain"].opt for a in arms.values())
    opt = arms["plain"].opt
    for arm in arms.values():
        arm.attach()
        hooked = len(shared._forward_pre_hooks) + len(opt._optimizer_step_pre_hooks)
        assert (hooked == 0) == arm.kind.startswith("plain"), (arm.kind, hooked)
        for _ in range(3):
            arm.after_step(wo._train_step(shared, opt, loss_fn, x, y, False))
        arm.detach()
        assert not shared._forward_pre_hooks and not shared._forward_hooks, arm.kind
        assert not opt._optimizer_step_pre_hooks and not opt._optimizer_step_post_hooks, arm.kind
    assert arms["minimal"].watch.step_index == 3


def test_the_versions_benchmark_loads_an_old_watch_beside_the_new_one():
    import pathlib
    import shutil

    import pytest

    root = pathlib.Path(__file__).resolve().parents[1]
    if shutil.which("git") is None or not (root / ".git").exists():
        pytest.skip("needs a git checkout (it exports an old revision with git archive)")
    out = _run("benchmarks/watch_versions.py", "--old", "HEAD", "--rounds", "2")
    rows = {line.split()[0] for line in out.splitlines()[1:] if line.strip()}
    assert rows == {"plain2", "old", "new"}, out
    assert "new - old" in out, out
