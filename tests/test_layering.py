"""The architecture is a checked contract (.importlinter, docs/architecture.md): faces -> core ->
probes -> passes -> torch helpers -> vocabulary, with writers depending only on the report. And
modules stay small: under 400 lines, one job each."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_LINES = 400
# Modules over the limit, waiting to be split (issue 10: none left); the
# list may only shrink (tests/test_layering.py fails for any other module over the limit).
KNOWN_LONG: set[str] = set()


def _lint(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("lint-imports")
    if exe is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    return subprocess.run([exe, *args], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    result = _lint("--config", str(REPO / ".importlinter"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_contract_sees_a_violation(tmp_path):
    # the same analysis with two layers swapped must fail: the checker really sees the edges
    config = tmp_path / "inverted.ini"
    config.write_text("[importlinter]\nroot_package = nndiag\n\n[importlinter:contract:x]\nname = inverted\n"
                      "type = layers\nlayers =\n    nndiag.report\n    nndiag.runner\n")
    result = _lint("--config", str(config))
    assert result.returncode != 0 and "BROKEN" in result.stdout.upper()


def test_modules_stay_small():
    long = {}
    for path in sorted((REPO / "nndiag").rglob("*.py")):
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > MAX_LINES:
            long[path.relative_to(REPO / "nndiag").as_posix()] = n
    unexpected = {k: v for k, v in long.items() if k not in KNOWN_LONG}
    assert not unexpected, f"modules over {MAX_LINES} lines (split them by job): {unexpected}"
