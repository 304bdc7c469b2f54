"""The JSON report (contract §3): ``Report.to_dict()`` serialised."""

from __future__ import annotations

import json

from nndiag.report import Report


def render(report: Report) -> str:
    """The report as indented JSON text (NaN/Inf values are written as strings: valid JSON)."""
    return json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n"
