"""The command line (contract §3): help without torch, version, reports, exit codes, and the core
issue's acceptance run on the reference MLP and its broken variants."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from nndiag import __version__
from nndiag.cli import main

CORE = ["--probe", "params", "--probe", "data", "--probe", "nan", "--probe", "gradients"]


def invoke(*args):
    result = CliRunner().invoke(main, list(map(str, args)))
    return result.exit_code, result.output


def test_help_does_not_import_torch():
    code = ("import sys\nfrom nndiag.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "try:\n    main(['check', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\nprint('NO-TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "NO-TORCH" in out.stdout and "--fail-on" in out.stdout


def test_version_and_help_on_every_command():
    assert invoke("--version") == (0, f"nndiag, version {__version__}\n")
    for cmd in (["--help"], ["check", "--help"], ["probes", "--help"]):
        code, out = invoke(*cmd)
        assert code == 0 and "Usage:" in out


def test_probes_lists_id_description_plugin():
    code, out = invoke("probes")
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["id", "plugin", "description"]
    nan_row = next(r for r in rows if r.startswith("nan "))
    assert "nndiag.probes.nan" in nan_row and "NaN" in nan_row


@pytest.fixture
def tiny_model(tmp_path):
    f = tmp_path / "tiny.py"
    f.write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        def build_model():
            return nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
        def sample_batch():
            g = torch.Generator().manual_seed(0)
            y = torch.zeros(32, dtype=torch.long)
            y[:3] = torch.tensor([1, 2, 1])
            return torch.randn(32, 4, generator=g), y
        loss_fn = nn.CrossEntropyLoss()
    """))  # 29 of 32 targets are class 0 (of 3): the data probe warns about the imbalance
    return f


def test_json_to_stdout_is_the_contract_shape(tiny_model):
    code, out = invoke("check", tiny_model, "--probe", "data", "--probe", "params", "--json", "-")
    report = json.loads(out[: out.rindex("}") + 1])
    assert set(report) >= {"nndiag", "subject", "status", "results"}
    assert report["subject"] == str(tiny_model) and report["status"] == "warn"
    for r in report["results"]:
        assert set(r) >= {"probe", "status", "summary", "findings", "metrics", "seconds"}
        for f in r["findings"]:
            assert set(f) >= {"severity", "where", "message", "value", "limit"}
    assert code == 0


def test_fail_on_warn_changes_exit_status(tiny_model):
    assert invoke("check", tiny_model, "--probe", "data")[0] == 0
    assert invoke("check", tiny_model, "--probe", "data", "--fail-on", "warn")[0] == 1


def test_quiet_prints_problems_and_verdict_only(tiny_model):
    code, out = invoke("check", tiny_model, "--probe", "data", "--probe", "params", "--quiet")
    assert "params" not in out  # passed: not shown
    assert "data" in out and out.strip().endswith("WARN (1 warn, 1 pass)")


def test_several_files_and_one_that_does_not_load(tiny_model, tmp_path):
    out_json = tmp_path / "r.json"
    code, out = invoke("check", tiny_model, tmp_path / "missing.py", "--probe", "params", "--json", out_json)
    assert code == 1  # one file checked, one could not be: not a clean pass
    report = json.loads(out_json.read_text())
    assert report["subject"] == [str(tiny_model), str(tmp_path / "missing.py")]
    assert [s["status"] for s in report["subjects"]] == ["pass", "error"]
    assert "No such model file" in report["subjects"][1]["error"]


def test_set_overrides_a_probe_setting(tiny_model, tmp_path):
    out_json = tmp_path / "r.json"
    invoke("check", tiny_model, "--probe", "nan", "--set", "nan.steps=4",
           "--set", "nan.watch_steps=1", "--json", out_json)
    (r,) = json.loads(out_json.read_text())["results"]
    assert r["metrics"]["steps_run"] == 4


# ---- the core issue's acceptance run --------------------------------------------------------------
@pytest.mark.usefixtures("mnist_available")
def test_reference_mlp_passes_the_four_core_probes(repo, tmp_path):
    out_json = tmp_path / "out.json"
    code, out = invoke("check", repo / "reference_models/mlp.py", *CORE, "--json", out_json)
    report = json.loads(out_json.read_text())
    assert code == 0, out
    assert {r["probe"]: r["status"] for r in report["results"]} == dict.fromkeys(
        ["params", "data", "nan", "gradients"], "pass")


@pytest.mark.usefixtures("mnist_available")
@pytest.mark.parametrize("variant,probe,where", [
    ("mlp_log_softmax_nan", "nan", "<model> (LogSoftmaxByHand)"),
    ("mlp_detached_layer", "gradients", "fc1.weight"),
    ("mlp_targets_out_of_range", "data", "targets"),
])
def test_broken_mlp_fails_the_right_probe(repo, tmp_path, variant, probe, where):
    out_json = tmp_path / "out.json"
    code, out = invoke("check", repo / f"reference_models/broken/{variant}.py", *CORE, "--json", out_json)
    assert code == 1, out
    report = json.loads(out_json.read_text())
    failed = {r["probe"]: r for r in report["results"] if r["status"] == "fail"}
    assert set(failed) == {probe}
    assert where in {f["where"] for f in failed[probe]["findings"]}
