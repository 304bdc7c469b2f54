"""The JUnit XML report (``nndiag check --junit PATH``), for GitLab, Jenkins, Azure DevOps and others.

Layout (valid against the JUnit XSD that Jenkins and Surefire use, ``tests/schemas/junit-10.xsd``):

- ``<testsuites>`` holds one ``<testsuite>`` per subject (model file), named after it, with the
  run metadata as ``<properties>``;
- each probe is one ``<testcase classname="SUBJECT" name="PROBE">``: ``fail`` becomes
  ``<failure>``, ``error`` ``<error>``, ``skip`` ``<skipped>``; ``warn`` passes (CI tools have no
  warning state) and its findings go to ``<system-out>``;
- a subject that cannot be checked is one ``<testcase name="load">`` with an ``<error>``.

A failure's text lists each finding (grouped by cause) with its place and, when known, the
``file:line`` of the user's code. The JUnit schema has no attribute for that on a test case.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any, Mapping

from nndiag.report import Status
from nndiag.writers.findings import PROBLEM_STATUSES, grouped, location

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import ProbeResult, Report, SubjectReport

_ELEMENT = {Status.FAIL: "failure", Status.ERROR: "error", Status.SKIP: "skipped"}


def _seconds(value: float) -> str:
    """A time the schema's SUREFIRE_TIME pattern accepts: digits, at most 3 decimals."""
    return f"{max(0.0, value if math.isfinite(value) else 0.0):.3f}"


def _clean(text: Any) -> str:
    """``text`` without the control characters XML 1.0 cannot hold (a traceback may carry them)."""
    return "".join(ch for ch in str(text) if ch in "\t\n\r" or ord(ch) >= 0x20)


def _finding_lines(subject: str, result: "ProbeResult") -> list[str]:
    lines = []
    for g in grouped([f for f in result.findings if f.severity in PROBLEM_STATUSES]):
        file, line = location(subject, g.first)
        at = f" ({file}:{line})" if file and line else ""
        where = ", ".join(w for w in g.wheres if w)
        lines.append(f"{g.severity}: {'[' + where + '] ' if where else ''}{g.message()}{at}")
    return lines


def _testcase(suite: ET.Element, subject: str, result: "ProbeResult") -> None:
    case = ET.SubElement(suite, "testcase", classname=_clean(subject), name=_clean(result.probe),
                         time=_seconds(result.seconds))
    body = "\n".join(_finding_lines(subject, result))
    element = _ELEMENT.get(result.status)
    if element is not None:
        node = ET.SubElement(case, element, message=_clean(result.summary), type=str(result.status))
        text = body or result.summary
        if result.details:
            text += "\n\n" + result.details
        node.text = _clean(text)
    elif body:  # warn (and pass facts): visible in the CI log, without failing the test case
        ET.SubElement(case, "system-out").text = _clean(body)


def _properties(suite: ET.Element, meta: Mapping[str, Any]) -> None:
    if not meta:
        return
    props = ET.SubElement(suite, "properties")
    for key, value in meta.items():
        if key == "files":
            for f in value or ():
                ET.SubElement(props, "property", name=f"sha256:{_clean(f.get('path'))}",
                              value=_clean(f.get("sha256") or ""))
            continue
        if isinstance(value, (list, tuple)):
            value = " ".join(str(v) for v in value)
        ET.SubElement(props, "property", name=_clean(key), value=_clean("" if value is None else value))


def _suite(root: ET.Element, s: "SubjectReport", meta: Mapping[str, Any]) -> None:
    counts = {st: sum(r.status is st for r in s.results) for st in Status}
    tests = len(s.results) + bool(s.load_error)
    suite = ET.SubElement(root, "testsuite", name=_clean(s.subject), tests=str(tests),
                          failures=str(counts[Status.FAIL]),
                          errors=str(counts[Status.ERROR] + bool(s.load_error)),
                          skipped=str(counts[Status.SKIP]),
                          time=_seconds(sum(r.seconds for r in s.results)))
    if meta.get("started"):
        suite.set("timestamp", str(meta["started"]))
    if meta.get("hostname"):
        suite.set("hostname", _clean(meta["hostname"]))
    _properties(suite, meta)
    if s.load_error:
        case = ET.SubElement(suite, "testcase", classname=_clean(s.subject), name="load", time="0.000")
        node = ET.SubElement(case, "error", message=_clean(s.load_error), type="load-error")
        node.text = _clean(s.load_error + ("\n\n" + s.load_error_details if s.load_error_details else ""))
    for r in s.results:
        _testcase(suite, s.subject, r)


def render(report: "Report") -> str:
    """The report as JUnit XML text (UTF-8, with an XML declaration)."""
    meta = dict(getattr(report, "metadata", None) or {})
    results = [r for s in report.subjects for r in s.results]
    root = ET.Element("testsuites", name="nndiag", tests=str(len(results) + sum(bool(s.load_error) for s in report.subjects)),
                      failures=str(sum(r.status is Status.FAIL for r in results)),
                      errors=str(sum(r.status is Status.ERROR for r in results)
                                 + sum(bool(s.load_error) for s in report.subjects)),
                      time=_seconds(sum(r.seconds for r in results)))
    for s in report.subjects:
        _suite(root, s, meta)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
