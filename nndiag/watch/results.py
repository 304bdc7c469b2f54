"""The watch's outcome as a :class:`nndiag.report.Report`: one subject, one result per check.

Each check becomes a :class:`~nndiag.report.ProbeResult` whose ``probe`` is the check id
(``watch.nan``, ...), whose findings are its events (``where`` is the place, the message names the
step and cause) and whose ``data`` holds the per-step series as ``charts`` (plain data: x, named
series, limits and marks) that the HTML writer draws as timelines.
"""

from __future__ import annotations

import dataclasses
from typing import Iterable

from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport
from nndiag.watch.checks import Check
from nndiag.watch.timeline import Event, Timeline


def finding(event: Event) -> Finding:
    """An event as a report finding."""
    return Finding(Status(event.severity), event.message, event.where, event.value, event.limit,
                   event.metric or f"step {event.step}")


def result(check: Check, tl: Timeline, seconds: float = 0.0, skipped: str = "") -> ProbeResult:
    """One check's ProbeResult."""
    if skipped:
        return ProbeResult(check.id, Status.SKIP, skipped)
    data = dict(check.data(tl))
    data["events"] = [{"step": e.step, "severity": e.severity, "where": e.where, "message": e.message}
                      for e in check.events]
    metrics = {k: v for k, v in check.metrics(tl).items() if v is not None}
    return ProbeResult(check.id, Status(check.status), check.summary(tl),
                       tuple(finding(e) for e in check.events), metrics, data, seconds,
                       description=check.title, settings=settings(check))


def settings(check: Check) -> tuple[dict, ...]:
    """The thresholds ``check`` ran with: applied value, default, source, meaning."""
    fields = {f.name: f for f in dataclasses.fields(type(check.cfg))}
    return tuple({"name": n, "value": getattr(check.cfg, n), "default": fields[n].default,
                  "source": fields[n].metadata.get("source", ""), "help": fields[n].metadata.get("help", "")}
                 for n in check.uses if n in fields)


def build_report(name: str, checks: Iterable[Check], tl: Timeline,
                 skipped: dict[str, str] | None = None) -> Report:
    """The Report of a watched run (``skipped``: check id -> reason it could not run)."""
    skipped = skipped or {}
    results = tuple(result(c, tl, skipped=skipped.get(c.id, "")) for c in checks)
    return Report((SubjectReport(name, results),))
