"""The terminal summary: one table per subject, the findings that matter, and a verdict line."""

from __future__ import annotations

import textwrap

from nndiag.report import Report, Status, SubjectReport

_MARK = {Status.PASS: "pass", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.ERROR: "ERROR",
         Status.SKIP: "skip"}


def render(report: Report, *, quiet: bool = False, width: int = 100, traceback: bool = False) -> str:
    """The summary table(s). ``quiet`` keeps only problems and the verdict line."""
    parts = [_subject(s, quiet, width, traceback) for s in report.subjects]
    return "\n".join(p for p in parts if p) + "\n"


def _subject(s: SubjectReport, quiet: bool, width: int, traceback: bool) -> str:
    if s.load_error:
        text = f"{s.subject}: cannot be checked\n  {s.load_error}"
        if traceback and s.load_error_details:
            text += "\n" + textwrap.indent(s.load_error_details.rstrip(), "  ")
        return text
    lines = [] if quiet else [s.subject]
    rows = [r for r in s.results if not quiet or r.status in (Status.WARN, Status.FAIL, Status.ERROR)]
    if rows:
        pid_w = max(len("probe"), *(len(r.probe) for r in rows))
        summary_w = max(20, width - pid_w - 20)
        if not quiet:
            lines.append(f"  {'probe':<{pid_w}}  {'status':<6}  {'time':>6}  summary")
        for r in rows:
            summary = r.summary if len(r.summary) <= summary_w else r.summary[: summary_w - 3] + "..."
            lines.append(f"  {r.probe:<{pid_w}}  {_MARK[r.status]:<6}  {r.seconds:>5.1f}s  {summary}")
        for r in rows:
            lines.extend(_details(r, traceback))
    lines.append(s.verdict_line())
    return "\n".join(lines)


def _details(r, traceback: bool) -> list[str]:
    out = []
    bad = [f for f in r.findings if f.severity in (Status.WARN, Status.FAIL, Status.ERROR)]
    if not bad:
        return out
    out.append(f"  {r.probe}:")
    for f in bad[:5]:
        where = f"[{f.where}] " if f.where else ""
        out.append(textwrap.fill(f"{f.severity.value}: {where}{f.message}", width=100,
                                 initial_indent="    - ", subsequent_indent="      "))
    if len(bad) > 5:
        out.append(f"    ... and {len(bad) - 5} more (see --json)")
    if traceback and r.details:
        out.append(textwrap.indent(r.details.rstrip(), "    "))
    return out
