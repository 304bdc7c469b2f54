"""Shared pytest configuration for nndiag's own tests.

MNIST is the official test set shipped in ``reference_models/mnist/`` (what a fresh clone has).
When ``NNDIAG_DATA_DIR`` is not set it is pointed at ``reference_models/`` (whose ``mnist/`` folder
is that copy), so tests that look for ``$NNDIAG_DATA_DIR/mnist`` find the same files the loaders use.
"""

import os
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]
SHIPPED_DATA = REPO / "reference_models"  # holds mnist/: the shipped MNIST test set

if "NNDIAG_DATA_DIR" not in os.environ:
    os.environ["NNDIAG_DATA_DIR"] = str(SHIPPED_DATA)


@pytest.fixture
def mnist_available() -> Path:
    """The data root holding MNIST; skips the test when there is none."""
    root = Path(os.environ.get("NNDIAG_DATA_DIR", SHIPPED_DATA))
    if not (root / "mnist").is_dir():
        pytest.skip(f"MNIST not found under {root} (set NNDIAG_DATA_DIR)")
    return root


@pytest.fixture
def repo() -> Path:
    """The repository root."""
    return REPO
