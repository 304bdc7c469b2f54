"""The report as long-form rows and status tallies: the views every writer and face shares.

:func:`rows` gives one row per finding and one per metric (``Report.rows()``; the CSV writer and
``Report.to_frame()`` are built on it); :func:`status_counts` and :func:`tally` count statuses for
the CLI's verdict lines and the pytest summary (``Report.tally()``). Pandas-free and torch-free.

Row columns (documented in docs/reports.md):
``subject, probe, status, kind, severity, where, metric, value, limit, message``

- ``status`` is the probe's status on every row of that probe, so filtering on it keeps every row
  about a failing probe; ``severity`` is the finding's own severity (empty on metric rows).
- ``kind`` is ``finding``, ``metric``, ``result`` (the one row of a probe with neither findings nor
  metrics: its summary in ``message``) or ``load-error`` (a subject that did not load).
- ``value`` and ``limit`` are numbers (None when there is none). A metric that is not a number
  (a string, a list) keeps ``value`` empty and its text in ``message``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import ProbeResult, Report, Status, SubjectReport

COLUMNS: tuple[str, ...] = ("subject", "probe", "status", "kind", "severity", "where", "metric",
                            "value", "limit", "message")
NUMERIC_COLUMNS: tuple[str, ...] = ("value", "limit")
TEXT_COLUMNS: tuple[str, ...] = tuple(c for c in COLUMNS if c not in NUMERIC_COLUMNS)


def number(value: Any) -> float | None:
    """A metric/finding value as a float for the numeric columns; None when it is not a number.

    NaN/Inf stay floats (also from the JSON form's "nan"/"inf" strings); numpy/torch scalars are
    unwrapped; bools count as 0/1.
    """
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
    return "" if value is None else str(value)


def _row(subject: str, result: "ProbeResult | None", **cells: Any) -> dict[str, Any]:
    row: dict[str, Any] = {c: (None if c in NUMERIC_COLUMNS else "") for c in COLUMNS}
    row["subject"] = subject
    if result is not None:
        row["probe"] = result.probe
        row["status"] = str(result.status)
    row.update(cells)
    return row


def _metric_rows(subject: str, result: "ProbeResult", metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name, raw in metrics.items():
        num = number(raw)
        message = "" if num is not None or raw is None else _text(raw)
        out.append(_row(subject, result, kind="metric", metric=str(name), value=num, message=message))
    return out


def rows(report: "Report") -> list[dict[str, Any]]:
    """The long-form rows of ``report`` (raw text, not neutralised): one per finding and per metric.

    A probe with neither findings nor metrics gets one ``result`` row with its summary; a subject
    that did not load gets one ``load-error`` row. Every row has exactly the keys in :data:`COLUMNS`.
    """
    out: list[dict[str, Any]] = []
    for subject in report.subjects:
        name = subject.subject
        if subject.load_error:
            out.append(_row(name, None, status="error", kind="load-error", severity="error",
                            message=subject.load_error))
        for result in subject.results:
            before = len(out)
            for f in result.findings:
                out.append(_row(name, result, kind="finding", severity=str(f.severity),
                                where=f.where or "", metric=f.metric or "", value=number(f.value),
                                limit=number(f.limit), message=f.message))
            out.extend(_metric_rows(name, result, dict(result.metrics or {})))
            if len(out) == before:
                out.append(_row(name, result, kind="result", message=result.summary))
    return out


def status_counts(subjects: Iterable["SubjectReport"]) -> dict[str, int]:
    """How many probe results ended in each status (by value), plus ``not loaded`` subjects."""
    from nndiag.report import Status

    counts = {st.value: 0 for st in Status}
    counts["not loaded"] = 0
    for s in subjects:
        counts["not loaded"] += bool(s.load_error)
        for r in s.results:
            counts[r.status.value] += 1
    return counts


def tally(counts: Mapping[str, int], order: Sequence["Status | str"]) -> str:
    """``"1 warn, 10 pass"``: the non-zero counts in ``order`` ("not loaded" last when present)."""
    keys = [getattr(k, "value", k) for k in order]
    parts = [f"{counts.get(k, 0)} {k}" for k in keys if counts.get(k, 0)]
    if counts.get("not loaded") and "not loaded" not in keys:
        parts.append(f"{counts['not loaded']} not loaded")
    return ", ".join(parts)
