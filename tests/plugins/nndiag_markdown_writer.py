"""A third-party writer plugin used by tests/test_third_party_plugins.py (not part of nndiag):
the report as a Markdown table, registered through the public ``nndiag_register_writers`` hook."""

from __future__ import annotations

import nndiag
from nndiag.writers import Writer


def render(report) -> str:
    """One Markdown table row per probe result."""
    lines = ["| subject | probe | status | summary |", "| --- | --- | --- | --- |"]
    for subject, r in report.all_results():
        lines.append(f"| {subject} | {r.probe} | {r.status.value} | {r.summary.replace('|', '/')} |")
    return "\n".join(lines) + "\n"


@nndiag.hookimpl
def nndiag_register_writers():
    return [Writer("markdown", (".md",), "A Markdown table of every probe (a test plugin).", render)]
