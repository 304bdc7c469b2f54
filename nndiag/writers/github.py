"""GitHub Actions annotations: ``::error file=...,line=...,title=...::message`` workflow commands.

``nndiag check`` prints them after its summary when ``GITHUB_ACTIONS`` is ``true`` (as GitHub sets
it on every runner), so each warn/fail/error finding shows on the pull request's diff at the line
of the user's code it comes from (the module's class definition or the call site), else on the
model file. Findings with one cause are one annotation. Also a writer (format ``github``) for
``--report github=-``.

Escaping follows GitHub's toolkit (``@actions/core`` ``command.ts``): in the message ``%``, CR and
LF are percent-encoded; in property values also ``:`` and ``,``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

from nndiag.report import Status
from nndiag.writers.findings import problems

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import Report

COMMAND = {Status.WARN: "warning", Status.FAIL: "error", Status.ERROR: "error"}


def escape_data(text: str) -> str:
    """A message escaped for a workflow command."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A property value (file, title) escaped for a workflow command."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    """True on a GitHub Actions runner (``GITHUB_ACTIONS=true``)."""
    return (environ if environ is not None else os.environ).get("GITHUB_ACTIONS", "").lower() == "true"


def render(report: "Report") -> str:
    """One workflow command line per problem (empty when there is none)."""
    lines = []
    for p in problems(report):
        props = []
        if p.file:
            props.append(f"file={escape_property(p.file)}")
            if p.line:
                props.append(f"line={int(p.line)}")
        title = f"nndiag {p.probe or 'load'}" + (f" [{p.where}]" if p.where else "")
        props.append(f"title={escape_property(title)}")
        lines.append(f"::{COMMAND[p.severity]} {','.join(props)}::{escape_data(p.message)}")
    return "".join(line + "\n" for line in lines)
