"""Bad input (contract §4): each case ends in a message naming the problem and the fix, exit 2
(file-level) or a probe ``error`` (probe-level), and no traceback unless ``--traceback``."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from nndiag.cli import main

HEADER = "import torch\nimport torch.nn as nn\n"
GOOD_MODEL = "def build_model():\n    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))\n"
GOOD_DATA = "def sample_batch():\n    return torch.randn(16, 4), torch.randint(0, 3, (16,))\n"
GOOD_LOSS = "loss_fn = nn.CrossEntropyLoss()\n"
FAST = ["--probe", "params", "--probe", "data", "--probe", "nan", "--probe", "gradients"]


def run(path, *args):
    """Run the CLI in-process; returns (exit code, combined output)."""
    result = CliRunner().invoke(main, ["check", str(path), *args])
    out = result.output + (result.stderr if hasattr(result, "stderr") else "")
    return result.exit_code, " ".join(out.split())  # messages wrap to the terminal width


def write(tmp_path, body, name="model.py"):
    f = tmp_path / name
    f.write_text(textwrap.dedent(body))
    return f


# ---- file-level problems: exit 2 ---------------------------------------------------------------
FILE_CASES = {
    "syntax error": (HEADER + "def build_model(:\n", ["syntax error at line 3", "py_compile"]),
    "import raises": (HEADER + "x = 1 / 0\n", ["raised ZeroDivisionError", "--traceback"]),
    "no model": (HEADER + GOOD_DATA + GOOD_LOSS, ["neither build_model() nor model", "def build_model"]),
    "no data": (HEADER + GOOD_MODEL + GOOD_LOSS, ["gives no data", "def sample_batch"]),
    "no loss": (HEADER + GOOD_MODEL + GOOD_DATA, ["defines no loss", "CrossEntropyLoss"]),
    "model not a module": (HEADER + "model = 3\n" + GOOD_DATA + GOOD_LOSS, ["not a torch.nn.Module"]),
    "sys.exit on import": (HEADER + "import sys\nsys.exit(3)\n", ["sys.exit(3)", "__main__"]),
}


@pytest.mark.parametrize("case", sorted(FILE_CASES))
def test_file_level_problem_exits_2_with_message(tmp_path, case):
    body, expected = FILE_CASES[case]
    code, out = run(write(tmp_path, body), *FAST)
    assert code == 2, out
    for text in expected:
        assert text in out
    assert "Traceback" not in out


def test_missing_file(tmp_path):
    code, out = run(tmp_path / "nope.py")
    assert code == 2
    assert "No such model file" in out and "Traceback" not in out


def test_not_python(tmp_path):
    code, out = run(write(tmp_path, "hello", name="model.txt"))
    assert code == 2
    assert "not a Python file" in out


def test_binary_file_with_py_suffix(tmp_path):
    f = tmp_path / "model.py"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe")
    code, out = run(f)
    assert code == 2
    assert "not a text file" in out or "syntax error" in out


def test_traceback_flag_shows_traceback(tmp_path):
    code, out = run(write(tmp_path, HEADER + "x = 1 / 0\n"), "--traceback", *FAST)
    assert code == 2
    assert "Traceback" in out and "ZeroDivisionError" in out


# ---- probe-level problems: probe status error with the message ------------------------------------
PROBE_CASES = {
    "batch shape rejected": (
        HEADER + GOOD_MODEL + GOOD_LOSS + "def sample_batch():\n    return torch.randn(16, 5), torch.randint(0, 3, (16,))\n",
        "forward raised RuntimeError", "inputs of shape (16, 5)"),
    "loss not scalar": (
        HEADER + GOOD_MODEL + GOOD_DATA + "loss_fn = nn.CrossEntropyLoss(reduction='none')\n",
        "needs a scalar loss", "reduction='mean'"),
    "forward raises": (
        HEADER + GOOD_DATA + GOOD_LOSS + textwrap.dedent("""
        class Bad(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 3)
            def forward(self, x):
                raise ValueError("boom in forward")
        def build_model():
            return Bad()
        """), "boom in forward", "forward raised ValueError"),
    "no parameters": (
        HEADER + GOOD_DATA + GOOD_LOSS + "def build_model():\n    return nn.Sequential(nn.ReLU(), nn.Softmax(dim=1))\n",
        "no parameters at all", "nn.ModuleList"),
    "empty loader": (
        HEADER + GOOD_MODEL + GOOD_LOSS + "train_loader = []\n", "yielded no batches", "drop_last"),
}


@pytest.mark.parametrize("case", sorted(PROBE_CASES))
def test_probe_level_problem_is_error_with_message(tmp_path, case):
    """Each of these stops every probe (the model, data or loss cannot be produced), so it is
    reported once, at file level (issue 13): exit 2 and the report's ``error``."""
    body, problem, fix = PROBE_CASES[case]
    out_json = tmp_path / "out.json"
    code, out = run(write(tmp_path, body), *FAST, "--json", str(out_json))
    assert code == 2, out
    assert "Traceback" not in out
    report = json.loads(out_json.read_text())
    assert report["status"] == "error" and not report["results"], report
    assert problem in report["error"] and fix in report["error"], report["error"]
    assert out.count(problem) == 1, out


def test_every_probe_erroring_means_nothing_checked_exit_2(tmp_path):
    body = PROBE_CASES["forward raises"][0]
    code, out = run(write(tmp_path, body), "--probe", "nan", "--probe", "gradients")
    assert code == 2, out


def test_unknown_probe_id_is_usage_error(tmp_path):
    f = write(tmp_path, HEADER + GOOD_MODEL + GOOD_DATA + GOOD_LOSS)
    code, out = run(f, "--probe", "nann")
    assert code == 2
    assert "Unknown probe id 'nann'" in out and "Known probes:" in out


def test_unknown_setting_is_usage_error(tmp_path):
    f = write(tmp_path, HEADER + GOOD_MODEL + GOOD_DATA + GOOD_LOSS)
    code, out = run(f, "--probe", "nan", "--set", "nan.stepz=3")
    assert code == 2
    assert "Unknown setting stepz" in out and "Valid settings:" in out
    assert "steps" in out.split("Valid settings:")[1]


def test_bad_set_syntax(tmp_path):
    f = write(tmp_path, HEADER + GOOD_MODEL + GOOD_DATA + GOOD_LOSS)
    code, out = run(f, "--set", "steps=3")
    assert code == 2 and "PROBE.KEY=VALUE" in out


def test_weights_of_another_model_is_a_file_level_error(tmp_path):
    import torch

    other = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), other)
    f = write(tmp_path, HEADER + GOOD_MODEL + GOOD_DATA + GOOD_LOSS)
    code, out = run(f, "--weights", str(other), *FAST)
    assert code == 2
    assert "does not fit the model" in out and "missing 0.bias, 0.weight" in out and "Traceback" not in out
