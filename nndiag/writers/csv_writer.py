"""The CSV report: one long table, one row per finding and one per metric.

Columns (documented in docs/reports.md):

``subject, probe, status, kind, severity, where, metric, value, limit, message``

- ``status`` is the probe's status on every row of that probe, so filtering on it keeps every row
  about a failing probe; ``severity`` is the finding's own severity (empty on metric rows).
- ``kind`` is ``finding``, ``metric``, ``result`` (the one row of a probe with neither findings nor
  metrics: its summary in ``message``) or ``load-error`` (a subject that did not load).
- ``value`` and ``limit`` are numbers (empty when there is none). A metric that is not a number
  (a string, a list) keeps ``value`` empty and its text in ``message``.

Text cells that a spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return) get a leading single quote (OWASP "CSV injection"). Only text columns are
treated that way: ``value`` and ``limit`` stay numbers, so ``-0.5`` is still ``-0.5``.

The rows themselves belong to the report (``Report.rows()``, in :mod:`nndiag.report_rows`);
:func:`render` neutralises ``Report.to_frame()`` and writes it; :func:`read_csv` reads one back
with the right types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nndiag.report_rows import COLUMNS, NUMERIC_COLUMNS, TEXT_COLUMNS, rows

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import Report

__all__ = ["COLUMNS", "NUMERIC_COLUMNS", "TEXT_COLUMNS", "neutralise", "render", "read_csv", "report_rows"]

# Leading characters that make Excel / LibreOffice / Google Sheets evaluate a cell (OWASP).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would take it for a formula."""
    if text and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def report_rows(report: "Report") -> list[dict[str, Any]]:
    """The long-form rows of ``report`` (:meth:`nndiag.report.Report.rows`)."""
    return rows(report)


def render(report: "Report") -> str:
    """The CSV text of ``report`` (columns :data:`COLUMNS`, text cells neutralised)."""
    import pandas as pd

    frame = report.to_frame()
    for col in TEXT_COLUMNS:
        frame[col] = frame[col].map(lambda v: neutralise("" if v is None else str(v)))
    for col in NUMERIC_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    # lineterminator "\n": the same bytes on every platform; floats are written with repr (exact).
    return frame.to_csv(index=False, lineterminator="\n")


def read_csv(path_or_buffer: Any):
    """Read a CSV written by :func:`render` back: text columns as strings (empty, not NaN), numbers
    as floats (NaN where empty). Neutralised cells keep their leading quote."""
    import pandas as pd

    frame = pd.read_csv(path_or_buffer, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                        na_values={c: [""] for c in NUMERIC_COLUMNS})
    for col in NUMERIC_COLUMNS:
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
    return frame
