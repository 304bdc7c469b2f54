"""nndiag: tells a PyTorch user, before a long training run, whether their model can train.

``import nndiag`` is cheap (no torch): the heavy parts load on first use.

    >>> report = nndiag.check("reference_models/mlp.py")          # doctest: +SKIP
    >>> print(report)                   # the terminal table     # doctest: +SKIP
    >>> report.exit_code()                                          # doctest: +SKIP

The API (every name here is importable from ``nndiag``):

check(path=None, *, model=None, batch=None, batches=None, loss_fn=None, optimizer=None,
      training_step=None, train_step=None, probes=(), skip=(), seed=None, device=None,
      settings=None, weights=None, threads=None, **probe_settings) -> Report
    Run the probes on a model file, or on a model, data and loss passed in memory.
check_probe(probe, path=None, **kwargs) -> ProbeResult
    Run one probe and return its result.
watch(model, optimizer, ...)
    The in-training watch: the probes' measurements on a live training loop (docs/watch.md).
read_csv(path) -> pandas.DataFrame
    Read a CSV report back with the right types; probe ids stay strings (``pandas.read_csv``
    alone turns the probe id ``nan`` into a missing value).
Report, SubjectReport, ProbeResult, Finding, Status
    The results. ``print(report)`` and ``report.summary(verbose=True)`` give the terminal table;
    in a notebook a report shows as the HTML report; ``report.to_dict()`` is the JSON report,
    ``report.to_frame()`` the long-form table, ``report.metadata`` the run's versions, seed,
    threads, command and host; ``report.exit_code(fail_on)`` is the CLI's exit status.
Probe, threshold, hookimpl
    Writing a third-party probe or writer plugin (docs/plugins.md).
nndiag.testing
    The pytest assertion helpers (``assert_overfits``, ``assert_finite``, ...; docs/pytest.md).
"""

from __future__ import annotations

from typing import Any

from nndiag.hookspecs import hookimpl
from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport

__version__ = "0.1.0"

__all__ = ["check", "check_probe", "watch", "read_csv", "hookimpl", "Probe", "Finding", "ProbeResult", "Report",
           "Status", "SubjectReport", "threshold", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy exports: these pull in torch, which `nndiag --help` and the pytest plugin must not pay for.
    if name in ("check", "check_probe"):
        from nndiag import api

        return getattr(api, name)
    if name == "watch":  # nndiag.watch(model, optimizer): the in-training watch (docs/watch.md)
        import importlib

        return importlib.import_module("nndiag.watch")  # a callable module: nndiag.watch(...) works
    if name == "read_csv":  # the CSV report read back with probe ids intact (pandas on first use)
        from nndiag.writers.csv_writer import read_csv

        return read_csv
    if name in ("Probe", "threshold"):
        from nndiag import probe

        return getattr(probe, name)
    raise AttributeError(f"module 'nndiag' has no attribute {name!r}")


def __dir__() -> list[str]:
    # dir(nndiag) and tab completion list the lazy exports too
    return sorted(set(globals()) | set(__all__))
