"""Golden reports: the JSON report and the terminal output of ``nndiag check`` on the reference
models must not change unless a probe's behaviour changes on purpose.

The golden files in ``tests/golden/`` hold, per reference model, the JSON report without the
parts that vary between runs (``seconds``, tracebacks) and the terminal output without the time
column. A refactor must leave them equal; a new key in the report is allowed (contract §3: keys
may be added), a changed or missing one is not.

Regenerate after an intended change of a probe's verdicts, and review the diff::

    NNDIAG_UPDATE_GOLDEN=1 OMP_NUM_THREADS=1 pytest -q tests/test_golden_reports.py
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nndiag.cli import main

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("NNDIAG_UPDATE_GOLDEN", "") not in ("", "0")
MODELS = {"xor": False, "mlp": True, "lstm": False}  # name -> needs the MNIST data
VOLATILE_KEYS = {"seconds", "details", "sweep_seconds"}  # wall times; tracebacks (absolute paths)
REL_TOL = 1e-6  # floats: equal to 6 significant digits (one thread, fixed seed: runs repeat exactly)
# ... on one CPU. Per-step training trajectories (the LR sweep's losses, the nan probe's long watch)
# also depend on the CPU's float kernels: on an AVX-512 Xeon the goldens made on an earlier build
# machine differed in them only, by up to 3.1e-4 (xor), 2.9e-5 (mlp) and 4.7e-3 (lstm, the last
# point of the LR sweep, where the loss diverges) relative, with every verdict, summary, other metric
# and the terminal output unchanged. Those points are compared to 2 significant digits; everything
# else stays exact to 6.
CURVE_REL_TOL = 1e-2
CURVE = re.compile(r"\.(data\.(loss_curve|losses|smoothed)|charts\[\d+\]\.series\[\d+\]\.y)\[\d+\]$"
                   r"|\.metrics\.loss_spike$")
_TIME = re.compile(r"(?m)^(  \S+ +(?:pass|WARN|FAIL|ERROR|skip) +) *\d+\.\ds")
_SPENT = re.compile(r"\b\d+\.\d+( of \d+(?:\.\d+)?)? s\b")  # "0.2 s", "0.1 of 60 s" in overfit's summary
RUN_KEY = "run"  # the report's run metadata: versions, host, start time, command line


def _stable(value: Any) -> Any:
    """The report with the run-to-run varying parts removed."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, str):
        return _SPENT.sub(r"-.-\1 s", value)
    return value


def stable_text(text: str) -> str:
    """Terminal output without the per-probe time column."""
    return _SPENT.sub(r"-.-\1 s", _TIME.sub(r"\1 -.-s", text))


def differences(golden: Any, actual: Any, where: str = "$") -> list[str]:
    """Where ``actual`` departs from ``golden``: dict keys may be added, nothing else may change."""
    if isinstance(golden, dict):
        if not isinstance(actual, dict):
            return [f"{where}: was an object, now {type(actual).__name__}"]
        out = []
        for key, value in golden.items():
            if key not in actual:
                out.append(f"{where}.{key}: missing")
            else:
                out += differences(value, actual[key], f"{where}.{key}")
        return out
    if isinstance(golden, list):
        if not isinstance(actual, list) or len(actual) != len(golden):
            return [f"{where}: list of {len(golden)} became {actual!r:.80}"]
        return [d for i, (g, a) in enumerate(zip(golden, actual)) for d in differences(g, a, f"{where}[{i}]")]
    if isinstance(golden, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        tol = CURVE_REL_TOL if CURVE.search(where) else REL_TOL
        if math.isclose(golden, actual, rel_tol=tol, abs_tol=1e-12):
            return []
    elif golden == actual and type(golden) is type(actual):
        return []
    return [f"{where}: {golden!r:.80} became {actual!r:.80}"]


def test_differences_allows_added_keys_only():
    golden = {"a": 1, "b": [1.0, {"c": "x"}]}
    assert differences(golden, {"a": 1, "b": [1.0 + 1e-9, {"c": "x", "new": 2}], "z": 0}) == []
    assert differences(golden, {"a": 2, "b": [1.0, {"c": "x"}]}) == ["$.a: 1 became 2"]
    assert differences(golden, {"b": [1.0]})[0] == "$.a: missing"
    assert differences(golden, {"a": 1, "b": [1.1, {"c": "y"}]}) == ["$.b[0]: 1.0 became 1.1",
                                                                     "$.b[1].c: 'x' became 'y'"]
    # training trajectories to 2 significant digits, everything else to 6
    curve = {"data": {"losses": [8.46], "final": 8.46}, "charts": [{"series": [{"y": [8.46]}]}]}
    near = {"data": {"losses": [8.50], "final": 8.46}, "charts": [{"series": [{"y": [8.50]}]}]}
    assert differences(curve, near) == []
    assert differences(curve, {**near, "data": {"losses": [8.50], "final": 8.50}}) == \
        ["$.data.final: 8.46 became 8.5"]
    assert len(differences(curve, {"data": {"losses": [9.0], "final": 8.46},
                                   "charts": [{"series": [{"y": [9.0]}]}]})) == 2
    assert stable_text("  nan   pass     12.3s  ok\n") == "  nan   pass      -.-s  ok\n"
    assert _stable({"summary": "25 of 300 steps, 0.1 of 60 s"}) == {"summary": "25 of 300 steps, -.- of 60 s"}
    assert _stable({"summary": "13 of 300 steps, 0.2 s, on 64"}) == {"summary": "13 of 300 steps, -.- s, on 64"}


def _run(name: str, tmp_path: Path, repo: Path, monkeypatch) -> tuple[dict, str]:
    monkeypatch.chdir(repo)  # subject names are the relative paths, as a user types them
    out = tmp_path / f"{name}.json"
    result = CliRunner().invoke(main, ["check", f"reference_models/{name}.py", "--threads", "1",
                                       "--json", str(out)])
    assert result.exit_code in (0, 1), result.output
    report = json.loads(out.read_text(encoding="utf-8"))
    report.pop(RUN_KEY, None)
    return _stable(report), stable_text(result.output)


@pytest.mark.parametrize("name", list(MODELS))
def test_reference_report_matches_golden(name, tmp_path, repo, monkeypatch, request):
    if MODELS[name]:
        request.getfixturevalue("mnist_available")
    report, text = _run(name, tmp_path, repo, monkeypatch)
    json_file, text_file = GOLDEN / f"{name}.json", GOLDEN / f"{name}.txt"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        json_file.write_text(json.dumps(report, indent=1, sort_keys=False) + "\n", encoding="utf-8")
        text_file.write_text(text, encoding="utf-8")
    if not json_file.exists():
        pytest.fail(f"No golden report {json_file}; create it with NNDIAG_UPDATE_GOLDEN=1.")
    golden = json.loads(json_file.read_text(encoding="utf-8"))
    golden.pop(RUN_KEY, None)
    diffs = differences(_stable(golden), report)
    assert not diffs, (f"{name}: the JSON report changed ({len(diffs)} differences; if intended, "
                       "regenerate with NNDIAG_UPDATE_GOLDEN=1):\n" + "\n".join(diffs[:40]))
    assert text == stable_text(text_file.read_text(encoding="utf-8")), f"{name}: the terminal output changed"
