"""No verdict depends on the thread count or the machine's load (issue 9, item 6): the reference
models and a few zoo files get the same status from every probe with ``threads=1``, with
``threads=2``, and with ``threads=2`` while busy-loop processes keep every core loaded.

A probe stopped by a wall-clock budget must say that it could not decide (skip), never warn or
fail, so a budget that only a loaded machine hits shows up here as a changed verdict."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

import nndiag

REPO = Path(__file__).resolve().parents[1]
MNIST = REPO / "reference_models" / "mnist" / "t10k-images-idx3-ubyte.gz"

FILES = [
    "reference_models/xor.py",
    "reference_models/lstm.py",
    pytest.param("reference_models/mlp.py",
                 marks=pytest.mark.skipif(not MNIST.is_file(), reason="offline MNIST not found")),
    "reference_models/zoo/healthy/heavy_dropout_mlp.py",  # dropout: random masks every step
    "reference_models/zoo/bugs/digits_mlp_sgd_lr.py",  # a chaotic run (SGD lr 1, momentum 0.9)
    "reference_models/zoo/bugs/sine_rnn.py",  # gradients of 1e5-1e15: rounding differs by thread
]


@contextmanager
def busy_cores():
    """Every core kept busy by a plain Python busy loop (our own child processes, ended by
    their handles afterwards)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(os.cpu_count() or 2)]
    try:
        yield
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def verdicts(path: str, threads: int) -> dict[str, str]:
    """Each probe's status for one check of ``path`` at seed 0."""
    report = nndiag.check(REPO / path, seed=0, threads=threads)
    subject = report.subjects[0]
    assert not subject.load_error, subject.load_error
    return {r.probe: str(r.status) for r in subject.results}


@pytest.mark.slow
@pytest.mark.parametrize("path", FILES)
def test_same_verdicts_with_one_thread_two_threads_and_busy_cores(path, monkeypatch):
    monkeypatch.setenv("NNDIAG_DATA_DIR", str(REPO / "reference_models"))
    one = verdicts(path, 1)
    two = verdicts(path, 2)
    with busy_cores():
        loaded = verdicts(path, 2)
    assert "error" not in one.values(), one
    assert one == two, {p: (one[p], two.get(p)) for p in one if one[p] != two.get(p)}
    assert one == loaded, {p: (one[p], loaded.get(p)) for p in one if one[p] != loaded.get(p)}
