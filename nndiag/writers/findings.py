"""What every writer shows about findings: where in the user's code, and which ones share a cause.

- :func:`location` gives a finding's ``(file, line)``: the user's source line the runner attached
  (``Finding.file``/``Finding.line``: where the module's class is defined or the op is called),
  else the subject's model file with no line, else ``("", None)``.
- :func:`grouped` folds findings of one probe that say the same thing about different places
  ("fc1.weight gets no gradient ...", "fc1.bias gets no gradient ...") into one group listing the
  places, so four findings behind one ``.detach()`` read as one cause.
- :func:`problems` lists what a CI format reports: every warn/fail/error finding (grouped), an
  errored probe without findings, and a subject that could not be loaded.

Reads the report only; no torch, no pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

from nndiag.report import Status

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import Finding, ProbeResult, Report, SubjectReport

PROBLEM_STATUSES = (Status.WARN, Status.FAIL, Status.ERROR)


@dataclass(frozen=True)
class Group:
    """Findings of one probe with one message up to the place they name: ``first`` and every place."""

    first: "Finding"
    wheres: tuple[str, ...]
    findings: tuple["Finding", ...]

    @property
    def severity(self) -> Status:
        """The worst severity in the group."""
        return Status.worst(f.severity for f in self.findings)

    def message(self) -> str:
        """The first finding's message, with the other places named when there are several."""
        if len(self.findings) == 1:
            return self.first.message
        others = ", ".join(w for w in self.wheres[1:] if w)
        return f"{self.first.message} The same finding for {others}."


def location(subject: str, finding: "Finding | None" = None) -> tuple[str, int | None]:
    """``(file, line)`` for a finding of ``subject``: its attached source line when known, else the
    subject's model file (line None) when the subject is a ``.py`` file, else ``("", None)``."""
    file = getattr(finding, "file", "") or ""
    line = getattr(finding, "line", None)
    if file:
        return file, (int(line) if line else None)
    if subject.endswith(".py"):
        return subject, None
    return "", None


def _pattern(finding: "Finding") -> str:
    """The message with the finding's own place (its ``where`` and that name's bare module path)
    masked, so findings that differ only in the place compare equal. Numbers are kept: findings
    whose measurements differ are not folded (each may need its own fix)."""
    text = finding.message
    where = finding.where or ""
    names = {where, where.split(" (")[0]} - {""}
    for name in sorted(names, key=len, reverse=True):
        text = text.replace(name, "\x00")
    return text


def grouped(findings: Sequence["Finding"]) -> list[Group]:
    """``findings`` folded into groups of one severity and one message pattern, in first-seen order.

    A finding without a ``where`` is never merged (there is no place to list)."""
    groups: dict[object, list["Finding"]] = {}
    for i, f in enumerate(findings):
        key: object = (str(f.severity), _pattern(f)) if f.where else ("single", i)
        groups.setdefault(key, []).append(f)
    return [Group(fs[0], tuple(f.where for f in fs), tuple(fs)) for fs in groups.values()]


@dataclass(frozen=True)
class Problem:
    """One thing a CI format reports: a subject, the probe (``""`` for a load error), how bad, the
    text, and where (``file``/``line``, ``where`` the module or parameter path)."""

    subject: str
    probe: str
    severity: Status
    title: str
    message: str
    where: str
    file: str
    line: int | None


def problems(report: "Report", statuses: Sequence[Status] = PROBLEM_STATUSES) -> Iterator[Problem]:
    """Every problem of ``report`` in report order (see the module docstring)."""
    for s in report.subjects:
        if s.load_error:
            file, line = location(s.subject)
            yield Problem(s.subject, "", Status.ERROR, "cannot be checked", s.load_error, "", file, line)
        for r in s.results:
            yield from _result_problems(s, r, statuses)


def _result_problems(s: "SubjectReport", r: "ProbeResult", statuses) -> Iterator[Problem]:
    bad = [f for f in r.findings if f.severity in statuses]
    if not bad and r.status in statuses and r.status is Status.ERROR:
        file, line = location(s.subject)
        yield Problem(s.subject, r.probe, r.status, r.summary, r.summary, "", file, line)
        return
    for g in grouped(bad):
        file, line = location(s.subject, g.first)
        yield Problem(s.subject, r.probe, g.severity, r.summary, g.message(), ", ".join(w for w in g.wheres if w),
                      file, line)
