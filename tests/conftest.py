"""Shared pytest configuration for nndiag's own tests.

The offline data root (``../shared/data`` beside the checkout: the official MNIST test set) is
exported as ``NNDIAG_DATA_DIR`` when present and not already set, so the README's plain ``pytest``
finds it. Tests that need it skip with a reason when it is absent.
"""

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

if "NNDIAG_DATA_DIR" not in os.environ and (SHARED_DATA / "mnist").is_dir():
    os.environ["NNDIAG_DATA_DIR"] = str(SHARED_DATA)


@pytest.fixture
def mnist_available() -> Path:
    """The data root holding MNIST; skips the test when there is none."""
    root = Path(os.environ.get("NNDIAG_DATA_DIR", SHARED_DATA))
    if not (root / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {root} (set NNDIAG_DATA_DIR)")
    return root


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO
