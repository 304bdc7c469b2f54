"""The terminal summary: wraps to the width instead of cutting, groups findings with one cause,
-v shows every finding; and the run metadata module."""

import dataclasses
import re

import pytest

from nndiag.report import ProbeResult, Report, Status, SubjectReport
from nndiag.writers import text
from report_samples import finding, sample_report

LONG = ("first NaN/Inf at step 0 in <model> (LogSoftmaxByHand) (torch.log) where the offline copy "
        "of the data ends, and the part a user needs comes last: use log_softmax")


def long_report():
    r = ProbeResult("nan", Status.FAIL, LONG, (finding("fail", LONG + " " + LONG, "fc1"),))
    return Report((SubjectReport("model.py", (r,)),))


@pytest.mark.parametrize("width", [60, 80, 200])
def test_lines_fit_the_width_and_nothing_is_cut(width):
    out = text.render(long_report(), width=width)
    assert all(len(line) <= width for line in out.splitlines()), out
    assert "..." not in out
    flat = re.sub(r"\s+", " ", out)
    assert "comes last: use log_softmax" in flat  # the actionable end of the summary is there


def test_width_follows_columns(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert text.terminal_width() == 200
    wide = text.render(long_report())
    monkeypatch.setenv("COLUMNS", "80")
    assert len(text.render(long_report()).splitlines()) > len(wide.splitlines())


def test_one_cause_is_one_entry_and_verbose_shows_each():
    default = text.render(sample_report(), width=100)
    assert "[fc1.weight, fc1.bias]" in default and "[fc1.bias]" not in default
    verbose = text.render(sample_report(), width=100, verbose=True)
    assert "[fc1.weight]" in verbose and "[fc1.bias]" in verbose


def test_verbose_shows_pass_facts_and_more_than_five():
    facts = tuple(finding("warn", f"unit group {i} looks odd", f"layer{i}") for i in range(8))
    facts += (finding("pass", "a fact about the model", "fc9"),)
    report = Report((SubjectReport("m.py", (ProbeResult("x", Status.WARN, "odd", facts),)),))
    default = text.render(report, width=100)
    assert "... and 3 more" in default and "a fact about" not in default
    verbose = text.render(report, width=100, verbose=True)
    assert "layer7" in verbose and "pass: [fc9] a fact about the model" in verbose


def test_source_line_is_shown_when_known():
    f = finding("fail", "fc1.weight gets no gradient", "fc1.weight", "models/net.py", 21)
    if not hasattr(f, "line"):
        pytest.skip("Finding has no source-line fields here")
    report = Report((SubjectReport("m.py", (ProbeResult("gradients", Status.FAIL, "x", (f,)),)),))
    assert "(at models/net.py:21)" in text.render(report, width=100)


def test_run_metadata_collect(tmp_path):
    from nndiag import run_metadata

    model = tmp_path / "m.py"
    model.write_bytes(b"x = 1\n")
    meta = run_metadata.collect(seed=3, device="cpu", threads=2, files=[model, tmp_path / "gone.py"],
                                argv=["nndiag", "check", "m.py"])
    assert set(meta) == set(run_metadata.KEYS)
    import hashlib

    assert meta["files"] == [{"path": str(model), "sha256": hashlib.sha256(b"x = 1\n").hexdigest()}]
    assert meta["seed"] == 3 and meta["threads"] == 2 and meta["command"] == ["nndiag", "check", "m.py"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", meta["started"])
    line = run_metadata.summary_line(meta)
    assert "seed 3" in line and "threads 2" in line and meta["hostname"] in line
