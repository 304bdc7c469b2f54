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

:func:`report_rows` is pandas-free (``Report.to_frame()`` builds the DataFrame from it);
:func:`render` builds the CSV text with pandas; :func:`read_csv` reads one back with the right types.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Mapping

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import ProbeResult, Report

COLUMNS: tuple[str, ...] = ("subject", "probe", "status", "kind", "severity", "where", "metric",
                            "value", "limit", "message")
NUMERIC_COLUMNS: tuple[str, ...] = ("value", "limit")
TEXT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in NUMERIC_COLUMNS)

# Leading characters that make Excel / LibreOffice / Google Sheets evaluate a cell (OWASP).
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def neutralise(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would take it for a formula."""
    if text and text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def _number(value: Any) -> float | None:
    """A metric/finding value as a float for the numeric columns; None when it is not a number."""
    if value is None or isinstance(value, (str, bytes)):
        if isinstance(value, str):  # the JSON form keeps NaN/Inf as "nan"/"inf"
            try:
                out = float(value)
            except ValueError:
                return None
            return out if not math.isfinite(out) else None
        return None
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy / torch scalar
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    return str(value)


def _row(subject: str, result: "ProbeResult | None", **cells: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: (None if c in NUMERIC_COLUMNS else "") for c in COLUMNS}
    row["subject"] = subject
    if result is not None:
        row["probe"] = result.probe
        row["status"] = str(result.status)
    row.update(cells)
    return row


def _metric_rows(subject: str, result: "ProbeResult", metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name, raw in metrics.items():
        num = _number(raw)
        message = "" if num is not None or raw is None else _text(raw)
        rows.append(_row(subject, result, kind="metric", metric=str(name), value=num, message=message))
    return rows


def report_rows(report: "Report") -> list[dict[str, Any]]:
    """The long-form rows of ``report`` (raw text, not neutralised): one per finding and per metric.

    A probe with neither findings nor metrics gets one ``result`` row with its summary; a subject
    that did not load gets one ``load-error`` row. Every row has exactly the keys in :data:`COLUMNS`.
    """
    rows: list[dict[str, Any]] = []
    for subject in report.subjects:
        name = subject.subject
        if subject.load_error:
            rows.append(_row(name, None, status="error", kind="load-error", severity="error",
                             message=subject.load_error))
        for result in subject.results:
            before = len(rows)
            for f in result.findings:
                rows.append(_row(name, result, kind="finding", severity=str(f.severity),
                                 where=f.where or "", metric=f.metric or "", value=_number(f.value),
                                 limit=_number(f.limit), message=f.message))
            rows.extend(_metric_rows(name, result, dict(result.metrics or {})))
            if len(rows) == before:
                rows.append(_row(name, result, kind="result", message=result.summary))
    return rows


def render(report: "Report") -> str:
    """The CSV text of ``report`` (columns :data:`COLUMNS`, text cells neutralised)."""
    import pandas as pd

    frame = pd.DataFrame(report_rows(report), columns=list(COLUMNS))
    for col in TEXT_COLUMNS:
        frame[col] = frame[col].map(lambda v: neutralise(_text(v)))
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
