"""Results as data: findings, probe results, subject reports and the whole report.

Everything here is a frozen dataclass built once by the runner and only read afterwards by the
writers (text, JSON, CSV, HTML), the pytest plugin and the assertion helpers. This module must not
import torch: the pytest plugin and ``nndiag --help`` load it without paying for torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Iterable, Mapping

SCHEMA_VERSION = "0.1.0"


class Status(str, Enum):
    """The verdict of one probe (contract §3). Ordered by :attr:`rank`, worst last."""

    SKIP = "skip"
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """Severity order used to pick the worst status: skip < pass < warn < fail < error."""
        return _RANK[self]

    @classmethod
    def worst(cls, statuses: Iterable["Status | str"]) -> "Status":
        """The most severe of ``statuses``; ``pass`` when there are none."""
        found = [cls(s) for s in statuses]
        return max(found, key=lambda s: s.rank) if found else cls.PASS

    def __str__(self) -> str:  # so f"{status}" prints "fail", not "Status.FAIL"
        return self.value


_RANK = {Status.SKIP: 0, Status.PASS: 1, Status.WARN: 2, Status.FAIL: 3, Status.ERROR: 4}


# Tally orders: the CLI's verdict line names the worst first; the pytest summary reads best first.
WORST_FIRST = (Status.FAIL, Status.ERROR, Status.WARN, Status.PASS, Status.SKIP)
BEST_FIRST = (Status.PASS, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP)


class FailOn(str, Enum):
    """The ``--fail-on`` level: the lowest probe status that makes the exit status 1."""

    FAIL = "fail"
    WARN = "warn"


def _clean_number(value: Any) -> Any:
    """JSON has no NaN/Inf: keep them as strings so the report stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _from_json_number(value: Any) -> Any:
    """Undo :func:`_clean_number`: "nan"/"inf"/"-inf" strings back to floats."""
    if isinstance(value, str) and value in ("nan", "inf", "-inf"):
        return float(value)
    return value


def _jsonable(value: Any) -> Any:
    """Convert nested metrics/data (floats, lists, dicts, numpy scalars) to plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=str)
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()  # numpy or torch scalar
    if hasattr(value, "tolist") and callable(value.tolist):
        return _jsonable(value.tolist())  # numpy array or tensor
    if value is None or isinstance(value, (bool, int, float, str)):
        return _clean_number(value)
    return str(value)  # anything else a probe stored: keep the report writable


@dataclass(frozen=True)
class Finding:
    """One thing a probe saw: how bad, where (module or parameter path), what, and the numbers.

    ``value`` and ``limit`` are the measured number and the threshold it crossed (None when the
    finding is not about a number). ``metric`` names what ``value`` measures. ``file`` and ``line``
    point at the user's code the finding is about (where the module's class is defined or the op
    is called), when the runner could tell; empty and None otherwise. ``rank`` names the rank of a
    multi-rank job the finding comes from, when the ranks' verdicts differ (else None).
    """

    severity: Status
    message: str
    where: str = ""
    value: float | None = None
    limit: float | None = None
    metric: str = ""
    file: str = ""
    line: int | None = None
    rank: int | None = None  # in a multi-rank job: the rank it was seen on, when ranks differ

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (contract §3); ``rank`` only when set (docs/distributed.md)."""
        return {
            "severity": str(self.severity),
            "where": self.where,
            "message": self.message,
            "value": _clean_number(self.value),
            "limit": _clean_number(self.limit),
            "metric": self.metric,
            "file": self.file,
            "line": self.line,
            **({"rank": self.rank} if self.rank is not None else {}),
        }


@dataclass(frozen=True)
class ProbeResult:
    """What one probe concluded about one subject.

    ``metrics`` holds scalars (one CSV row each); ``data`` holds series for plots and tables
    (loss curves, per-layer lists) that do not fit a single number. ``details`` keeps the
    traceback of an ``error`` for ``--traceback``.

    The runner also copies what a writer needs from the probe class, so writers never go back to
    the plugin registry: ``description`` (one line), ``hint`` (what a failure usually means, for
    the assertion helpers), ``settings`` (each config field with the value actually applied, its
    default, source and meaning) and ``charts`` (plain-data plots, :mod:`nndiag.charts`).
    """

    probe: str
    status: Status
    summary: str
    findings: tuple[Finding, ...] = ()
    metrics: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    details: str = ""
    description: str = ""
    hint: str = ""
    settings: tuple[Mapping[str, Any], ...] = ()
    charts: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (contract §3), with ``data`` added."""
        return {
            "probe": self.probe,
            "status": str(self.status),
            "summary": self.summary,
            "findings": [f.to_dict() for f in self.findings],
            "metrics": _jsonable(dict(self.metrics)),
            "data": _jsonable(dict(self.data)),
            "seconds": round(self.seconds, 4),
            **({"details": self.details} if self.details else {}),
            "description": self.description,
            "hint": self.hint,
            "settings": [_jsonable(dict(s)) for s in self.settings],
            "charts": [_jsonable(c.to_dict() if hasattr(c, "to_dict") else c) for c in self.charts],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ProbeResult":
        """The inverse of :meth:`to_dict` ("nan"/"inf" strings become floats again)."""
        findings = tuple(
            Finding(Status(f["severity"]), f.get("message", ""), f.get("where", "") or "",
                    _from_json_number(f.get("value")), _from_json_number(f.get("limit")),
                    f.get("metric", "") or "", f.get("file", "") or "", f.get("line"), f.get("rank"))
            for f in d.get("findings", ()))
        from nndiag.charts import chart_from_dict

        return cls(d["probe"], Status(d["status"]), d.get("summary", ""), findings,
                   dict(d.get("metrics", {})), dict(d.get("data", {})),
                   float(d.get("seconds", 0.0)), d.get("details", "") or "",
                   d.get("description", "") or "", d.get("hint", "") or "",
                   tuple(dict(s) for s in d.get("settings", ()) or ()),
                   tuple(c for c in (chart_from_dict(x) for x in d.get("charts", ()) or ()) if c is not None))


@dataclass(frozen=True)
class SubjectReport:
    """All probe results for one subject (one model file, or objects passed in directly).

    ``load_error`` is set when the subject could not be loaded at all (exit status 2).
    """

    subject: str
    results: tuple[ProbeResult, ...] = ()
    load_error: str = ""
    load_error_details: str = ""

    @property
    def status(self) -> Status:
        """Worst probe status; ``error`` when the subject did not load."""
        if self.load_error:
            return Status.ERROR
        return Status.worst(r.status for r in self.results)

    @property
    def nothing_checked(self) -> bool:
        """True when the file did not load or every probe errored (contract §3: exit 2)."""
        if self.load_error:
            return True
        return bool(self.results) and all(r.status is Status.ERROR for r in self.results)

    def result(self, probe: str) -> ProbeResult:
        """The result of probe ``probe``; KeyError naming the probes that ran when absent."""
        for r in self.results:
            if r.probe == probe:
                return r
        ran = ", ".join(r.probe for r in self.results) or "none"
        raise KeyError(f"probe {probe!r} did not run on {self.subject!r} (ran: {ran})")

    def tally(self, order=WORST_FIRST) -> str:
        """``"1 warn, 10 pass"``: how many probes ended in each status, in ``order``."""
        from nndiag.report_rows import status_counts, tally

        return tally(status_counts((self,)), order)

    def verdict_line(self) -> str:
        """The subject's one-line verdict: ``"model.py: WARN (1 warn, 10 pass)"``."""
        return f"{self.subject}: {self.status.value.upper()} ({self.tally()})"

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "SubjectReport":
        """The inverse of :meth:`to_dict`."""
        return cls(d["subject"], tuple(ProbeResult.from_dict(r) for r in d.get("results", ())),
                   load_error=d.get("error", "") or "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of one subject (contract §3)."""
        out: dict[str, Any] = {
            "nndiag": SCHEMA_VERSION,
            "subject": self.subject,
            "status": str(self.status),
            "results": [dict(r.to_dict(), subject=self.subject) for r in self.results],
        }
        if self.load_error:
            out["error"] = self.load_error
        return out


@dataclass(frozen=True)
class Report:
    """The outcome of one ``nndiag check`` (or one ``nndiag.check(...)`` call): one or more subjects.

    ``metadata`` describes the run (versions, device, threads, seed, command line, start time,
    host, model file hashes: :mod:`nndiag.run_metadata`); the JSON report holds it as ``run``.
    ``print(report)`` shows the terminal summary and a notebook shows the HTML report inline.
    """

    subjects: tuple[SubjectReport, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @property
    def status(self) -> Status:
        """Worst status over every subject."""
        return Status.worst(s.status for s in self.subjects)

    def exit_code(self, fail_on: FailOn | str = FailOn.FAIL) -> int:
        """The process exit status (contract §3).

        2 when nothing could be checked (every subject failed to load or had every probe error);
        1 when any probe reached the ``fail_on`` level or errored (an error means a question went
        unanswered, which CI must not take for a pass); 0 otherwise.
        """
        if not self.subjects or all(s.nothing_checked for s in self.subjects):
            return 2
        threshold = Status(FailOn(fail_on).value)
        for s in self.subjects:
            if s.load_error:
                return 1 if len(self.subjects) > 1 else 2
            for r in s.results:
                if r.status is Status.ERROR or r.status.rank >= threshold.rank:
                    return 1
        return 0

    def all_results(self) -> Iterable[tuple[str, ProbeResult]]:
        """(subject, result) pairs in report order."""
        for s in self.subjects:
            for r in s.results:
                yield s.subject, r

    def counts(self) -> dict[str, dict[str, int]]:
        """Per subject, how many probes ended in each status."""
        out: dict[str, dict[str, int]] = {}
        for s in self.subjects:
            c = {st.value: 0 for st in Status}
            for r in s.results:
                c[r.status.value] += 1
            out[s.subject] = c
        return out

    def to_dict(self) -> dict[str, Any]:
        """The JSON report (contract §3).

        With one subject it is exactly that subject's object. With several, ``subject`` is the list
        of subjects, ``results`` the concatenation (each result names its ``subject``), and
        ``subjects`` holds each subject's own object.
        """
        run = {"run": _jsonable(dict(self.metadata))} if self.metadata else {}
        if len(self.subjects) == 1:
            return {**self.subjects[0].to_dict(), **run}
        per_subject = [s.to_dict() for s in self.subjects]
        return {
            "nndiag": SCHEMA_VERSION,
            "subject": [s.subject for s in self.subjects],
            "status": str(self.status),
            "results": [r for s in per_subject for r in s["results"]],
            "subjects": per_subject,
            **run,
        }

    def tally(self, order=BEST_FIRST) -> str:
        """Status counts over every subject, ``"3 pass, 1 fail, 1 not loaded"`` ("" when none)."""
        from nndiag.report_rows import status_counts, tally

        return tally(status_counts(self.subjects), order)

    def summary_lines(self) -> list[str]:
        """One verdict line per subject (the last line ``nndiag check`` prints for each)."""
        return [s.verdict_line() if not s.load_error else f"{s.subject}: cannot be checked"
                for s in self.subjects]

    def rows(self) -> list[dict[str, Any]]:
        """The long-form rows: one per finding and per metric (columns ``report_rows.COLUMNS``)."""
        from nndiag.report_rows import rows

        return rows(self)

    def to_frame(self):
        """The long-form table (one row per finding or metric): the one bridge to pandas."""
        import pandas as pd  # imported only here

        from nndiag.report_rows import COLUMNS

        return pd.DataFrame(self.rows(), columns=list(COLUMNS))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Report":
        """The inverse of :meth:`to_dict` (one subject's object, or several under ``subjects``)."""
        meta = dict(d.get("run") or {})
        if "subjects" in d:
            return cls(tuple(SubjectReport.from_dict(s) for s in d["subjects"]), meta)
        if isinstance(d.get("subject"), list):
            return cls((), meta)
        return cls((SubjectReport.from_dict(d),), meta)

    def merged(self, other: "Report") -> "Report":
        """A report holding this report's subjects followed by ``other``'s (this one's metadata)."""
        return Report(self.subjects + other.subjects, self.metadata or other.metadata)

    # --- display: the terminal table for print(), the HTML report for notebooks ---------------
    # The report is data and does not depend on the writers; these three methods are the one
    # convenience that reaches them, by module name, only when called.

    def summary(self, *, verbose: bool = False, width: int | None = None) -> str:
        """The terminal summary ``nndiag check`` prints (``verbose``: every finding, run metadata)."""
        import importlib

        return importlib.import_module("nndiag.writers.text").render(self, verbose=verbose, width=width)

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        """The HTML report, inline in Jupyter (in an iframe, so its styles stay its own)."""
        import html as _html
        import importlib

        page = importlib.import_module("nndiag.writers.html").render(self)
        return (f'<iframe srcdoc="{_html.escape(page, quote=True)}" title="nndiag report" '
                'style="width:100%;height:900px;border:1px solid #ccc" '
                'sandbox="allow-scripts"></iframe>')
