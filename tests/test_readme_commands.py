"""Every ``nndiag`` command the README shows runs as shown, and prints what the README says it prints.

The README's shell blocks (```bash) that start with ``nndiag`` are run from the repository root as
a new user would: the installed ``nndiag`` command, no ``NNDIAG_*`` variables (the reference models
find the MNIST test set shipped in ``reference_models/mnist/``), no ``GITHUB_ACTIONS``, output
piped (so the summary wraps at the 100-column default). When the block after a command is a plain
fenced block, that is its expected output. Compared after removing what varies between runs:
the time column, durations such as ``0.2 s`` inside summaries, and the line breaks they move.

Regenerate the README's output blocks after an intended change, and review the diff::

    NNDIAG_UPDATE_README=1 OMP_NUM_THREADS=1 pytest -q tests/test_readme_commands.py
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
UPDATE = os.environ.get("NNDIAG_UPDATE_README", "") not in ("", "0")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.S | re.M)
_TIME_COLUMN = re.compile(r"(?m)^(  \S+ +(?:pass|WARN|FAIL|ERROR|skip) +) *\d+\.\ds")
_DURATION = re.compile(r"\b\d+(?:\.\d+)? s\b")


@dataclass
class Example:
    command: str
    expected: str | None  # None: the README shows no output for it
    span: tuple[int, int] | None  # where the expected block's body is in the README text


def examples(text: str) -> list[Example]:
    """The README's ``nndiag`` commands with the plain block that follows each (if any)."""
    blocks = list(_FENCE.finditer(text))
    out = []
    for i, block in enumerate(blocks):
        if block.group(1) != "bash" or not block.group(2).startswith("nndiag "):
            continue
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        between = text[block.end(): nxt.start()] if nxt else ""
        if nxt is not None and nxt.group(1) == "" and not between.strip():
            out.append(Example(block.group(2).strip(), nxt.group(2), nxt.span(2)))
        else:
            out.append(Example(block.group(2).strip(), None, None))
    return out


def normalise(output: str) -> str:
    """The output without run-to-run variation: times, durations, and where lines wrap."""
    text = _TIME_COLUMN.sub(r"\1-.-s", output)
    text = _DURATION.sub("-.- s", text)
    return re.sub(r"\s+", " ", text).strip()


def run(command: str) -> subprocess.CompletedProcess:
    """``command`` as a user types it, from the repository root, in a clean environment."""
    args = shlex.split(command)
    exe = shutil.which("nndiag") or None
    argv = [exe, *args[1:]] if exe else [sys.executable, "-m", "nndiag.cli", *args[1:]]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("NNDIAG_") and k not in ("GITHUB_ACTIONS", "COLUMNS")}
    env["OMP_NUM_THREADS"] = "1"  # the probes' numbers do not depend on it; their speed does
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


EXAMPLES = examples(README.read_text(encoding="utf-8"))


def test_the_readme_has_commands_with_outputs():
    commands = [e.command for e in EXAMPLES]
    assert "nndiag check reference_models/xor.py" in commands
    assert any("mlp.py" in c for c in commands) and any("cnn.py" in c for c in commands)
    assert sum(e.expected is not None for e in EXAMPLES) >= 4


def test_normalise_ignores_times_and_wrapping():
    a = "  nan    FAIL      0.1s  loss 2.3 after\n      23 steps, 0.2 s, on 64\n"
    b = "  nan    FAIL     12.4s  loss 2.3 after 23 steps,\n      11.9 s, on 64\n"
    assert normalise(a) == normalise(b)
    assert normalise(a) != normalise(a.replace("2.3", "2.4"))


@pytest.mark.parametrize("example", EXAMPLES, ids=[e.command for e in EXAMPLES])
def test_readme_command(example):
    result = run(example.command)
    assert result.returncode in (0, 1), f"{example.command} exited {result.returncode}:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    if example.expected is None:
        return
    if UPDATE:
        text = README.read_text(encoding="utf-8")
        for e in examples(text):
            if e.command == example.command and e.span:
                start, end = e.span
                README.write_text(text[:start] + result.stdout + text[end:], encoding="utf-8")
                break
        return
    assert normalise(result.stdout) == normalise(example.expected), (
        f"`{example.command}` no longer prints what the README shows; if intended, regenerate with "
        f"NNDIAG_UPDATE_README=1.\n--- README\n{example.expected}\n--- now\n{result.stdout}")


def test_the_docs_ci_workflow_installs_nndiag_from_a_path_or_git():
    """nndiag is not on PyPI: the copy-paste workflow must not `pip install nndiag` from there
    (installing from a path is what tests/test_wheel.py exercises)."""
    yaml = pytest.importorskip("yaml")
    doc = (REPO / "docs" / "pytest.md").read_text(encoding="utf-8")
    blocks = [m.group(2) for m in _FENCE.finditer(doc) if m.group(1) == "yaml" and "jobs:" in m.group(2)]
    assert blocks, "docs/pytest.md lost its CI workflow"
    workflow = yaml.safe_load(blocks[0])
    runs = [step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]]
    installs = [line.strip() for run in runs for line in run.splitlines()
                if line.strip().startswith("pip install") and "nndiag" in line]
    assert installs, runs
    for line in installs:
        target = next(a for a in shlex.split(line)[2:] if "nndiag" in a)
        assert target.startswith(("./", "/")) or "git+" in target, f"installs nndiag from PyPI: {line}"
    assert any("download.pytorch.org/whl/cpu" in run for run in runs)  # the CPU-only torch option
