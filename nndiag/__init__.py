"""nndiag: tells a PyTorch user, before a long training run, whether their model can train.

``import nndiag`` is cheap (no torch): the heavy parts load on first use.

    >>> report = nndiag.check("reference_models/mlp.py")          # doctest: +SKIP
    >>> report.exit_code()                                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from nndiag.hookspecs import hookimpl
from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport

__version__ = "0.1.0"

__all__ = ["check", "check_probe", "watch", "hookimpl", "Probe", "Finding", "ProbeResult", "Report",
           "Status", "SubjectReport", "threshold", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy exports: these pull in torch, which `nndiag --help` and the pytest plugin must not pay for.
    if name in ("check", "check_probe"):
        from nndiag import api

        return getattr(api, name)
    if name == "watch":  # nndiag.watch(model, optimizer): the in-training watch (docs/watch.md)
        import importlib

        return importlib.import_module("nndiag.watch")  # a callable module: nndiag.watch(...) works
    if name in ("Probe", "threshold"):
        from nndiag import probe

        return getattr(probe, name)
    raise AttributeError(f"module 'nndiag' has no attribute {name!r}")
