"""The built-in report writers, registered through the public ``nndiag_register_writers`` hook.

Each ``render`` is a ``"module:function"`` name, so registering them costs nothing: pandas (CSV)
and matplotlib (HTML) are imported only when a report is written in that format.
"""

from __future__ import annotations

from nndiag.hookspecs import hookimpl
from nndiag.writers import Writer

BUILTIN_WRITERS: tuple[Writer, ...] = (
    Writer("json", (".json",), "The JSON report (contract §3).", "nndiag.writers.json_writer:render"),
    Writer("csv", (".csv",), "Long-form CSV: one row per finding and per metric.",
           "nndiag.writers.csv_writer:render"),
    Writer("html", (".html", ".htm"), "A self-contained HTML page with plots.", "nndiag.writers.html:render"),
    Writer("text", (".txt",), "The terminal summary, as plain text.", "nndiag.writers.text:render"),
    # CI formats (issue 13): JUnit XML (GitLab, Jenkins, Azure), SARIF 2.1.0 (GitHub code scanning),
    # GitHub Actions annotations (workflow commands; printed by the CLI when GITHUB_ACTIONS=true).
    Writer("junit", (".xml",), "JUnit XML: one test case per probe.", "nndiag.writers.junit:render"),
    Writer("sarif", (".sarif",), "SARIF 2.1.0: one result per finding, at its source line.",
           "nndiag.writers.sarif:render"),
    Writer("github", (), "GitHub Actions annotations (::error file=...,line=...::message).",
           "nndiag.writers.github:render"),
)


@hookimpl
def nndiag_register_writers():
    """The built-in writers."""
    return list(BUILTIN_WRITERS)
