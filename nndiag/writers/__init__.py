"""Report writers: plugins that turn a :class:`~nndiag.report.Report` into text. They only read.

A writer is a :class:`Writer` record handed to nndiag by the ``nndiag_register_writers`` hook; the
built-in text, JSON, CSV and HTML writers are registered the same way (:mod:`nndiag.writers.builtin`).
:func:`write_report` is the one place a report reaches a file or standard output (``-``): the CLI's
``--json/--csv/--html/--report`` and the pytest plugin's ``--nndiag-report`` all go through it.

This module imports neither torch, pandas nor matplotlib: a writer's ``render`` may be given as a
``"module:function"`` name, imported only when a report is written in that format.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from nndiag.errors import UsageError

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import Report

STDOUT = "-"


@dataclass(frozen=True)
class Writer:
    """One report format: its name, the file suffixes it claims and how to render a report."""

    format: str
    suffixes: tuple[str, ...]
    description: str
    render: Callable[["Report"], str] | str  # or "module:function", imported on first use

    def render_report(self, report: "Report") -> str:
        """The report as text in this format (ImportError when the writer's module is missing)."""
        fn = self.render
        if isinstance(fn, str):
            module, _, name = fn.partition(":")
            fn = getattr(importlib.import_module(module), name)
        return fn(report)


def parse_target(text: str) -> tuple[str | None, str]:
    """``"junit=out.xml"`` -> ``("junit", "out.xml")``; ``"out.json"`` -> ``(None, "out.json")``."""
    fmt, sep, path = text.partition("=")
    if sep and fmt and "/" not in fmt and "\\" not in fmt and "." not in fmt:
        return fmt, path
    return None, text


def pick_writer(writers: Mapping[str, Writer], path: str, format: str | None = None) -> Writer:
    """The writer for ``format``, else the one claiming ``path``'s suffix; UsageError naming the
    registered formats and suffixes otherwise."""
    if format is not None:
        if format in writers:
            return writers[format]
        raise UsageError(f"No report writer for the format {format!r}.",
                         hint=f"Registered formats: {', '.join(sorted(writers))} (see `nndiag writers`).")
    suffix = Path(path).suffix.lower()
    for w in writers.values():
        if suffix and suffix in w.suffixes:
            return w
    known = sorted(s for w in writers.values() for s in w.suffixes)
    raise UsageError(f"{path}: no report writer claims the suffix {suffix or '(none)'!r}.",
                     hint=f"Use one of {', '.join(known)}, or FORMAT=PATH with a registered format "
                     f"({', '.join(sorted(writers))}).")


def write_report(report: "Report", path: str | Path, *, format: str | None = None, host: Any = None,
                 stdout: Callable[[str], Any] | None = None) -> Writer:
    """Write ``report`` to ``path`` (``-``: standard output) with the writer for ``format`` or for
    the path's suffix, among ``host.writers()`` (a :class:`~nndiag.plugins.PluginHost`; the built-in
    writers only when None). Creates missing folders; UTF-8. Returns the writer used.

    OSError when the file cannot be written; ImportError when the writer's module is missing.
    """
    writers = host.writers() if host is not None else _builtin_writers()
    writer = pick_writer(writers, str(path), format)
    text = writer.render_report(report)
    if str(path) == STDOUT:
        if stdout is None:
            import sys

            sys.stdout.write(text)
        else:
            stdout(text)
        return writer
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return writer


def _builtin_writers() -> dict[str, Writer]:
    from nndiag.writers.builtin import BUILTIN_WRITERS

    return {w.format: w for w in BUILTIN_WRITERS}
