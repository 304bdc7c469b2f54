"""The terminal summary: one table per subject, the findings that matter, and a verdict line.

Lines fit the terminal: a summary longer than its column wraps onto indented continuation lines
(never cut), at the width of the terminal (``$COLUMNS``, else the terminal's own, else 100 when
the output is not a terminal, so piped output and CI logs do not depend on a window size).
Findings with one cause are shown once with every place they name (:mod:`nndiag.writers.findings`),
each with the file and line of the user's code when the runner found one. ``verbose`` (``-v``)
shows every finding of every probe in full, ungrouped, and the run metadata.
"""

from __future__ import annotations

import shutil
import textwrap

from nndiag.report import Report, Status, SubjectReport
from nndiag.writers.findings import PROBLEM_STATUSES, grouped, location

_MARK = {Status.PASS: "pass", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.ERROR: "ERROR",
         Status.SKIP: "skip"}
FALLBACK_WIDTH = 100  # when the output is not a terminal and $COLUMNS is unset
MIN_WIDTH = 60  # narrower than this, wrapping makes the table unreadable: let the terminal wrap
MAX_SHOWN = 5  # finding groups shown per probe without -v


def terminal_width() -> int:
    """The width to wrap to: ``$COLUMNS``, the terminal's, else :data:`FALLBACK_WIDTH`."""
    return max(MIN_WIDTH, shutil.get_terminal_size((FALLBACK_WIDTH, 24)).columns)


def render(report: Report, *, quiet: bool = False, width: int | None = None, traceback: bool = False,
           verbose: bool = False) -> str:
    """The summary table(s). ``quiet`` keeps only problems and the verdict line; ``verbose`` shows
    every finding in full and the run metadata; ``width`` defaults to :func:`terminal_width`."""
    width = max(MIN_WIDTH, width or terminal_width())
    parts = [_subject(s, quiet, width, traceback, verbose) for s in report.subjects]
    if verbose and not quiet:
        parts.append(_metadata(report, width))
    return "\n".join(p for p in parts if p) + "\n"


def _metadata(report: Report, width: int) -> str:
    from nndiag.run_metadata import summary_line

    meta = getattr(report, "metadata", None) or {}
    line = summary_line(meta)
    if not line:
        return ""
    return textwrap.fill("run: " + line, width=width, subsequent_indent="  ", break_on_hyphens=False)


def _subject(s: SubjectReport, quiet: bool, width: int, traceback: bool, verbose: bool) -> str:
    if s.load_error:
        text = f"{s.subject}: cannot be checked\n" + textwrap.fill(
            s.load_error, width=width, initial_indent="  ", subsequent_indent="  ", break_on_hyphens=False)
        if traceback and s.load_error_details:
            text += "\n" + textwrap.indent(s.load_error_details.rstrip(), "  ")
        return text
    lines = [] if quiet else [s.subject]
    rows = [r for r in s.results if not quiet or r.status in PROBLEM_STATUSES]
    if rows:
        pid_w = max(len("probe"), *(len(r.probe) for r in rows))
        if not quiet:
            lines.append(f"  {'probe':<{pid_w}}  {'status':<6}  {'time':>6}  summary")
        indent = 2 + pid_w + 2 + 6 + 2 + 6 + 2
        for r in rows:
            head = f"  {r.probe:<{pid_w}}  {_MARK[r.status]:<6}  {r.seconds:>5.1f}s  "
            lines.extend(_wrap(r.summary, head, indent, width))
        for r in rows:
            lines.extend(_details(s.subject, r, traceback, verbose, width))
    lines.append(s.verdict_line())
    return "\n".join(lines)


def _wrap(text: str, head: str, indent: int, width: int) -> list[str]:
    """``head`` then ``text`` wrapped into the column that starts at ``indent``."""
    wrapped = textwrap.wrap(text, width=max(20, width - indent), break_on_hyphens=False,
                            break_long_words=True) or [""]
    return [head + wrapped[0]] + [" " * indent + part for part in wrapped[1:]]


def _at(subject: str, finding) -> str:
    file, line = location(subject, finding)
    return f" (at {file}:{line})" if file and line else ""


def _details(subject: str, r, traceback: bool, verbose: bool, width: int) -> list[str]:
    fill = dict(width=width, initial_indent="    - ", subsequent_indent="      ", break_on_hyphens=False)
    if verbose:
        shown = list(r.findings)
        if not shown:
            return []
        out = [f"  {r.probe}:"]
        for f in shown:
            where = f"[{f.where}] " if f.where else ""
            out.append(textwrap.fill(f"{f.severity.value}: {where}{f.message}{_at(subject, f)}", **fill))
    else:
        groups = grouped([f for f in r.findings if f.severity in PROBLEM_STATUSES])
        if not groups:
            return []
        out = [f"  {r.probe}:"]
        for g in groups[:MAX_SHOWN]:
            wheres = ", ".join(w for w in g.wheres if w)
            where = f"[{wheres}] " if wheres else ""
            out.append(textwrap.fill(f"{g.severity.value}: {where}{g.message()}{_at(subject, g.first)}", **fill))
        if len(groups) > MAX_SHOWN:
            out.append(f"    ... and {len(groups) - MAX_SHOWN} more (-v shows them all; also --json)")
    if traceback and r.details:
        out.append(textwrap.indent(r.details.rstrip(), "    "))
    return out
