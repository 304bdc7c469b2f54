"""The SARIF 2.1.0 report (``nndiag check --sarif PATH``), for GitHub code scanning and other viewers.

One ``run`` whose tool is nndiag, with one rule per probe that ran (its id and one-line description)
and one result per warn/fail/error finding (findings with one cause grouped, see
:mod:`nndiag.writers.findings`): ``warn`` is level ``warning``, ``fail`` and ``error`` are ``error``.
A result's physical location is the user's source line when the runner found one (the module's
class definition or the call site), else the model file; its logical location is the module or
parameter path (``fc1.weight``). A subject that cannot be checked is one ``error`` result of the
rule ``load``. The run metadata goes to the run's ``invocations`` and ``properties``.

Valid against the OASIS SARIF 2.1.0 schema (``tests/schemas/sarif-schema-2.1.0.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote

from nndiag.report import Status, _jsonable
from nndiag.writers.findings import problems

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import Report

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
LEVEL = {Status.WARN: "warning", Status.FAIL: "error", Status.ERROR: "error"}


def artifact_uri(path: str) -> str:
    """A SARIF artifact URI: a relative path as a relative URI reference (``/`` separators,
    percent-encoded), an absolute path as a ``file://`` URI."""
    p = Path(path)
    if p.is_absolute():
        return p.as_uri()
    return quote(p.as_posix(), safe="/._-~")


def _rules(report: "Report") -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for s in report.subjects:
        if s.load_error and "load" not in seen:
            seen["load"] = {"id": "load", "name": "load",
                            "shortDescription": {"text": "The model file could not be loaded or checked at all."}}
        for r in s.results:
            if r.probe not in seen:
                text = getattr(r, "description", "") or f"The {r.probe} probe."
                seen[r.probe] = {"id": r.probe, "name": r.probe, "shortDescription": {"text": text}}
                hint = getattr(r, "hint", "")
                if hint:
                    seen[r.probe]["help"] = {"text": hint}
    return list(seen.values())


def _result(p, rule_index: Mapping[str, int]) -> dict[str, Any]:
    rule = p.probe or "load"
    out: dict[str, Any] = {"ruleId": rule, "ruleIndex": rule_index[rule], "level": LEVEL[p.severity],
                           "message": {"text": p.message or p.title}}
    location: dict[str, Any] = {}
    if p.file:
        physical: dict[str, Any] = {"artifactLocation": {"uri": artifact_uri(p.file)}}
        if p.line:
            physical["region"] = {"startLine": int(p.line)}
        location["physicalLocation"] = physical
    if p.where:
        location["logicalLocations"] = [{"fullyQualifiedName": p.where, "kind": "member"}]
    if location:
        out["locations"] = [location]
    out["properties"] = {"subject": p.subject, "severity": str(p.severity)}
    return out


def _invocation(meta: Mapping[str, Any]) -> dict[str, Any]:
    # the check itself ran (its verdicts are the results); a file that did not load is a result too
    inv: dict[str, Any] = {"executionSuccessful": True}
    if meta.get("command"):
        inv["commandLine"] = " ".join(str(a) for a in meta["command"])
    if meta.get("started"):
        inv["startTimeUtc"] = str(meta["started"])
    if meta.get("hostname"):
        inv["machine"] = str(meta["hostname"])
    return inv


def to_sarif(report: "Report") -> dict[str, Any]:
    """The SARIF log of ``report`` as a dict."""
    from nndiag import __version__

    meta = dict(getattr(report, "metadata", None) or {})
    rules = _rules(report)
    index = {r["id"]: i for i, r in enumerate(rules)}
    run: dict[str, Any] = {
        "tool": {"driver": {"name": "nndiag", "version": __version__, "rules": rules}},
        "invocations": [_invocation(meta)],
        "results": [_result(p, index) for p in problems(report)],
    }
    if meta:
        run["properties"] = _jsonable(meta)
    return {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}


def render(report: "Report") -> str:
    """The report as SARIF 2.1.0 JSON text."""
    return json.dumps(to_sarif(report), indent=2, allow_nan=False) + "\n"
