"""The long-form CSV report: rows, pandas round trip, and spreadsheet-formula neutralising."""

from __future__ import annotations

import io
import math

import pandas as pd
import pytest

from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport
from nndiag.writers import csv_writer
from nndiag.writers.csv_writer import COLUMNS, neutralise, read_csv, render, report_rows
from fixtures.demo_report import demo_report


def _report() -> Report:
    grads = ProbeResult(
        "gradients", Status.FAIL, "=SUM(A1:A9) looks like a formula",
        (Finding(Status.FAIL, "-1 is what the loss saw", where="0", value=-1.5e-9, limit=1e-7,
                 metric="max_abs_grad"),
         Finding(Status.WARN, "+cmd|' /C calc'!A0", where="@features.3", value=float("inf"), limit=100.0,
                 metric="max_abs_grad"),
         Finding(Status.WARN, "\tleading tab", where="fc1", metric="note"),
         Finding(Status.WARN, "\rleading carriage return, and a\nsecond line, \"quoted\"", where="fc2")),
        {"total_grad_norm": -3.25, "steps": 5, "ratio": float("nan"), "flag": True, "op": "=relu",
         "big": 123456789012},
    )
    plain = ProbeResult("nan", Status.PASS, "no NaN/Inf anywhere")
    skipped = ProbeResult("saturation", Status.SKIP, "skipped: no sigmoid")
    metrics_only = ProbeResult("params", Status.PASS, "10 parameters", (), {"total": 10, "frozen": 0})
    return Report((SubjectReport("-evil.py", (grads, plain, skipped, metrics_only)),
                   SubjectReport("missing.py", load_error="=HYPERLINK(\"http://x\") no such file")))


def test_rows_one_per_finding_and_metric_and_one_for_a_bare_probe():
    rows = report_rows(_report())
    assert all(list(r) == list(COLUMNS) for r in rows)
    by_probe = {}
    for r in rows:
        by_probe.setdefault((r["subject"], r["probe"]), []).append(r)
    g = by_probe[("-evil.py", "gradients")]
    assert [r["kind"] for r in g] == ["finding"] * 4 + ["metric"] * 6
    assert {r["status"] for r in g} == {"fail"}  # the probe's status on every row
    assert [r["severity"] for r in g[:4]] == ["fail", "warn", "warn", "warn"]
    assert g[0]["value"] == -1.5e-9 and g[0]["limit"] == 1e-7 and g[0]["where"] == "0"
    metrics = {r["metric"]: r for r in g if r["kind"] == "metric"}
    assert metrics["total_grad_norm"]["value"] == -3.25
    assert metrics["flag"]["value"] == 1.0
    assert metrics["op"]["value"] is None and metrics["op"]["message"] == "=relu"  # text metric
    assert math.isnan(metrics["ratio"]["value"])
    # probes with neither findings nor metrics: one row with status and summary
    assert by_probe[("-evil.py", "nan")] == [dict(zip(COLUMNS, (
        "-evil.py", "nan", "pass", "result", "", "", "", None, None, "no NaN/Inf anywhere")))]
    (skip,) = by_probe[("-evil.py", "saturation")]
    assert (skip["status"], skip["kind"], skip["message"]) == ("skip", "result", "skipped: no sigmoid")
    assert [r["kind"] for r in by_probe[("-evil.py", "params")]] == ["metric", "metric"]
    (load,) = by_probe[("missing.py", "")]
    assert (load["status"], load["kind"]) == ("error", "load-error")
    assert len(rows) == 10 + 1 + 1 + 2 + 1


def test_round_trip_with_plain_read_csv_keeps_numbers():
    report = _report()
    rows = report_rows(report)
    frame = pd.read_csv(io.StringIO(render(report)))
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == len(rows)
    for col in ("value", "limit"):
        assert frame[col].dtype == "float64"
        for got, row in zip(frame[col], rows):
            want = row[col]
            if want is None or (isinstance(want, float) and math.isnan(want)):
                assert math.isnan(got)
            else:
                assert got == float(want)  # exact: floats are written in full precision
    assert frame["value"].min() == -3.25  # a negative number stays a negative number
    assert frame.loc[frame["metric"] == "big", "value"].item() == 123456789012.0


def test_round_trip_with_read_csv_helper_gives_same_text_and_numbers():
    report = _report()
    rows = report_rows(report)
    frame = read_csv(io.StringIO(render(report)))
    for got, want in zip(frame.to_dict("records"), rows):
        for col in COLUMNS:
            if col in ("value", "limit"):
                w = want[col]
                if w is None or math.isnan(w):
                    assert math.isnan(got[col]), col
                else:
                    assert got[col] == w, col
            else:
                assert got[col] == neutralise(want[col] or ""), (col, got[col], want[col])
    assert frame.loc[3, "message"].endswith('a\nsecond line, "quoted"')  # newline and quotes survive


def test_formula_cells_are_neutralised_but_numbers_are_not():
    text = render(_report())
    frame = read_csv(io.StringIO(text))
    assert frame.loc[0, "subject"] == "'-evil.py"
    assert frame.loc[1, "message"] == "'+cmd|' /C calc'!A0"
    assert frame.loc[1, "where"] == "'@features.3"
    assert frame.loc[2, "message"] == "'\tleading tab"
    assert frame.loc[3, "message"].startswith("'\rleading carriage return")
    assert (frame.loc[frame["metric"] == "op", "message"] == "'=relu").all()
    assert frame.loc[frame["kind"] == "load-error", "message"].item().startswith("'=HYPERLINK(")
    # no text cell of the file starts with a formula character
    for col in csv_writer.TEXT_COLUMNS:
        for cell in frame[col]:
            assert not cell.startswith(csv_writer.FORMULA_PREFIXES), (col, cell)
    # numbers are written as numbers: no quote in front of the negative value
    assert ",-1.5e-09,1e-07," in text
    assert ",-3.25,," in text
    assert "'-3.25" not in text and "'-1.5e-09" not in text


@pytest.mark.parametrize("cell,want", [("=1+1", "'=1+1"), ("+1", "'+1"), ("-x", "'-x"), ("@SUM", "'@SUM"),
                                       ("\tx", "'\tx"), ("\rx", "'\rx"), ("fc1", "fc1"), ("", ""),
                                       ("a=b", "a=b"), ("'quoted", "'quoted")])
def test_neutralise(cell, want):
    assert neutralise(cell) == want


def test_to_frame_and_demo_report_have_the_documented_columns():
    report = demo_report()
    frame = report.to_frame()
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == len(report_rows(report))
    back = read_csv(io.StringIO(render(report)))
    assert len(back) == len(frame)
    assert set(back["kind"]) == {"finding", "metric", "result", "load-error"}
    assert set(back["status"]) == {"pass", "warn", "fail", "error", "skip"}


def test_csv_of_a_real_run():
    torch = pytest.importorskip("torch")
    import nndiag

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    batch = (torch.randn(16, 4), torch.randint(0, 3, (16,)))
    report = nndiag.check(model=model, batch=batch, loss_fn=torch.nn.CrossEntropyLoss(),
                          probes=["params", "data"])
    frame = read_csv(io.StringIO(render(report)))
    params = frame[(frame["probe"] == "params") & (frame["metric"] == "total")]
    assert params["value"].item() == 4 * 8 + 8 + 8 * 3 + 3
    assert set(frame["probe"]) == {"params", "data"}
