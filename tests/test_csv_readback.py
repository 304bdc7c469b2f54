"""Which way reads the CSV report back with its probe ids intact: nndiag.read_csv does; a plain
pandas.read_csv turns the probe id ``nan`` into a missing value (quoted or not), which is why the
docs (docs/reports.md) say to use nndiag.read_csv."""

import io

import pandas as pd

import nndiag
from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport
from nndiag.writers import csv_writer


def report():
    results = (ProbeResult("nan", Status.FAIL, "first NaN at step 0", (Finding(Status.FAIL, "NaN", "0"),),
                           {"steps": 20}),
               ProbeResult("params", Status.PASS, "33 parameters", (), {"total": 33}))
    return Report((SubjectReport("m.py", results),))


def test_nndiag_read_csv_keeps_the_nan_probe_id():
    frame = nndiag.read_csv(io.StringIO(csv_writer.render(report())))
    assert (frame.probe == "nan").sum() == 2  # its finding and its metric
    assert frame.loc[frame.probe == "nan", "where"].tolist() == ["0", ""]  # text stays text
    assert frame.loc[frame.metric == "steps", "value"].tolist() == [20.0]
    assert nndiag.read_csv is csv_writer.read_csv


def test_plain_pandas_read_csv_loses_it():
    """The reason for the advice: pandas' default NA parsing, which quoting does not prevent."""
    text = csv_writer.render(report())
    plain = pd.read_csv(io.StringIO(text))
    assert (plain.probe == "nan").sum() == 0 and plain.probe.isna().sum() == 2
    quoted = pd.read_csv(io.StringIO(text.replace("\nm.py,nan,", '\nm.py,"nan",')))
    assert quoted.probe.isna().sum() == 2
    fixed = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)  # the plain equivalent
    assert (fixed.probe == "nan").sum() == 2
