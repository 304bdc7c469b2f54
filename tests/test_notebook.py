"""nndiag in a notebook: the example in docs/examples/notebook.py runs, print(report) is the terminal
table, a report shows as the HTML report inline, help(nndiag) lists the API; the HTML report shows
the run metadata and the findings' source lines."""

import dataclasses
import html
import os
import pydoc
import re
import subprocess
import sys
from pathlib import Path

import nndiag
from nndiag.writers import html as html_writer
from nndiag.writers import text
from report_samples import sample_report

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "examples" / "notebook.py"


def test_the_example_notebook_runs_and_shows_what_it_says():
    env = {k: v for k, v in os.environ.items() if not k.startswith("NNDIAG_")}
    env["OMP_NUM_THREADS"] = "1"
    result = subprocess.run([sys.executable, str(EXAMPLE)], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "read_csv(path) -> pandas.DataFrame" in out  # help(nndiag) lists the API
    assert "reference_models/xor.py\n  probe " in out
    assert re.search(r"^reference_models/xor\.py: (PASS|WARN) \(", out, re.M)  # the verdict line
    assert "run: nndiag 0.1.0, torch" in out  # summary(verbose=True) ends with the run metadata
    assert re.search(r"^(pass|warn) 4/4 parameters get gradients", out, re.M)  # check_probe's result


def test_help_lists_the_api():
    doc = pydoc.render_doc(nndiag, renderer=pydoc.plaintext)
    for name in ("check(path=None", "check_probe(probe", "watch(model", "read_csv(path)", "Report,",
                 "Probe, threshold, hookimpl", "nndiag.testing"):
        assert name in doc, name
    assert {"check", "read_csv", "Report"} <= set(dir(nndiag))


def test_print_and_repr_html():
    report = sample_report()
    assert str(report) == text.render(report) == report.summary()
    assert "run: nndiag 0.1.0, torch 2.14.1" in report.summary(verbose=True)
    assert "run: nndiag" not in report.summary()
    frame = report._repr_html_()
    assert frame.startswith("<iframe srcdoc=") and 'sandbox="allow-scripts"' in frame
    inner = html.unescape(frame.split('srcdoc="', 1)[1].split('" title=', 1)[0])
    assert inner == html_writer.render(report)


def test_html_shows_the_run_metadata_and_source_lines():
    page = html_writer.render(sample_report())
    assert "torch 2.14.1" in page and "ci-runner" in page and 'title="nndiag check model.py"' in page
    assert "model.py:12" in page  # the grouped gradients findings' source line
    bare = html_writer.render(dataclasses.replace(sample_report(), metadata={}))
    assert 'class="muted run"' not in bare
