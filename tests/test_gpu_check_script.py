"""The CPU side of benchmarks/gpu_check.sh (docs/gpu.md): what the GPU check runs, exercised here.

benchmarks/device_verdicts.py in its CPU mode on two small files (one markdown table, one row per
file, equal verdicts, the summary line, exit status 0), a differing probe's row and exit status 1
from synthetic reports, the full run's file list, and the script's refusal of ``--device cuda`` on
a machine without a GPU. The GPU-marked tests themselves are in tests/test_gpu.py.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
REFERENCE = sorted(str(p.relative_to(REPO)) for p in [
    *(REPO / "reference_models").glob("*.py"), *(REPO / "reference_models" / "broken").glob("*.py")]
    if not p.name.startswith("_") and p.stem not in ("data", "train"))


def _helper():
    """benchmarks/device_verdicts.py as a module (benchmarks/ is not a package)."""
    if "device_verdicts" not in sys.modules:
        spec = importlib.util.spec_from_file_location("device_verdicts",
                                                      REPO / "benchmarks/device_verdicts.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["device_verdicts"] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["device_verdicts"]


def test_device_verdicts_prints_one_row_per_file_on_the_cpu():
    """The helper in its CPU mode on two small files: one markdown table, one row per file with
    five cells, equal verdicts, the summary line, exit status 0."""
    files = ["reference_models/xor.py", "reference_models/broken/mlp_log_softmax_nan.py"]
    done = subprocess.run([sys.executable, "benchmarks/device_verdicts.py", "--device", "cpu",
                           "--jobs", "2", "--files", *files], cwd=REPO, capture_output=True,
                          text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("|")]
    assert lines[0] == ("| file | verdicts equal | differing (cpu -> cpu) | CPU s | cpu again s |")
    assert lines[1].startswith("| --- |")
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]
    assert [r[0] for r in rows] == files
    assert all(len(r) == 5 and r[1] == "yes" and r[2] == "" for r in rows)
    assert all(float(r[3]) > 0 and float(r[4]) > 0 for r in rows)  # probe seconds were read
    assert "2 of 2 files give the same verdicts" in done.stdout
    assert "[4/4]" in done.stderr  # progress, one line per check


def test_device_verdicts_names_the_differing_probes_and_exits_1(monkeypatch, capsys):
    dv = _helper()
    base = dv.read_report({"status": "fail", "results": [
        {"probe": "nan", "status": "fail", "seconds": 0.5}, {"probe": "overfit", "status": "pass",
                                                             "seconds": 1.0}]})
    other = dv.read_report({"status": "fail", "results": [
        {"probe": "nan", "status": "fail", "seconds": 0.2}, {"probe": "overfit", "status": "fail",
                                                             "seconds": 0.4}]})
    assert dv.differences(base, base, "cuda") == []
    assert dv.differences(base, other, "cuda") == ["overfit: pass -> fail"]
    crashed = dv.Run(status="no report: exit 1: Traceback")
    assert dv.differences(base, crashed, "cuda") == ["cuda: no report: exit 1: Traceback"]
    runs = iter([base, other])
    monkeypatch.setattr(dv, "check_file", lambda *a, **k: next(runs))
    monkeypatch.setattr(dv, "device_available", lambda d: "")
    assert dv.main(["--device", "cuda", "--files", "reference_models/xor.py", "--jobs", "1"]) == 1
    out = capsys.readouterr().out
    assert "| reference_models/xor.py | no | overfit: pass -> fail | 1.5 | 0.6 |" in out


def test_every_file_of_the_full_run_is_a_model_file():
    """The full run covers the reference models, the broken ones and the whole zoo, nothing else."""
    files = _helper().all_files()
    zoo = [p for p in (REPO / "reference_models/zoo").glob("*/*.py")
           if not p.name.startswith("_") and p.stem != "symptoms"]
    assert len(files) == len(REFERENCE) + len(zoo)
    for f in files:  # each defines the model a check needs (contract §1)
        text = (REPO / f).read_text()
        assert any(m in text for m in ("def build_model", "\nmodel =", "import build_model",
                                       ", build_model")), f


@pytest.mark.skipif(HAS_CUDA, reason="checks the refusal on a machine without a GPU")
def test_gpu_check_sh_refuses_cuda_without_a_gpu():
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--device", "cuda"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no CUDA GPU" in done.stderr and "--device cpu --quick" in done.stderr
