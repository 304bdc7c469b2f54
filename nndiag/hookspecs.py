"""Every hook nndiag defines, in one place (the plugin contract).

A plugin is any module or object with functions marked ``@nndiag.hookimpl`` named after these
specs. Third-party plugins are found through the ``nndiag`` entry-point group, e.g. in their
``pyproject.toml``::

    [project.entry-points.nndiag]
    my_probes = "my_package.nndiag_probes"

Built-in probes and writers use the same hooks (see ``nndiag.plugins.DEFAULT_PLUGINS``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import pluggy

if TYPE_CHECKING:  # pragma: no cover - types only
    from nndiag.probe import Probe
    from nndiag.report import ProbeResult, Report
    from nndiag.writers import Writer

PROJECT = "nndiag"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---- registration ---------------------------------------------------------------------------
@hookspec
def nndiag_register_probes() -> "Sequence[type[Probe]]":
    """Return the probe classes this plugin provides.

    Each class needs a unique ``id`` (duplicate ids across plugins are rejected, naming both
    plugins), a one-line ``description``, a ``Config`` dataclass and a ``run(ctx, out)`` method.
    """


@hookspec
def nndiag_register_writers() -> "Sequence[Writer]":
    """Return the report writers this plugin provides (:class:`nndiag.writers.Writer` records).

    Each has a unique ``format`` (``nndiag check --report FORMAT=PATH``), the file ``suffixes`` it
    claims (``--nndiag-report out.xml`` in pytest picks the writer by suffix) and a ``render``
    function ``Report -> str``, or its ``"module:function"`` name so it is imported only when used.
    """


# ---- notifications --------------------------------------------------------------------------
@hookspec
def nndiag_probe_finished(subject: str, result: "ProbeResult") -> None:
    """Called after each probe has run on a subject, with its result (e.g. for live logging)."""


@hookspec
def nndiag_run_finished(report: "Report") -> None:
    """Called once at the end of a run with the whole report (e.g. to upload or archive it)."""
