"""Two plugins defined outside nndiag (tests/plugins/), loaded through the ``nndiag`` entry-point
group exactly as an installed distribution's would be, get everything the built-ins get:

- the probe plugin (``output-range``): its place in the cost order, rows in the CSV, a plot and its
  thresholds table (with the applied value) in the HTML, its hint in an assertion helper's message;
- the writer plugin (``markdown``): listed by ``nndiag writers``, reachable from ``nndiag check``
  (``--report markdown=PATH`` or by its ``.md`` suffix) and from pytest's ``--nndiag-report``.
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

import nndiag  # noqa: E402
from nndiag.cli import main  # noqa: E402
from nndiag.plugins import PluginHost  # noqa: E402
from nndiag.testing import NndiagAssertionError, assert_report_ok  # noqa: E402

PLUGINS = Path(__file__).parent / "plugins"
MODEL = """
import torch, torch.nn as nn
def build_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
def sample_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 4, generator=g) * 20, torch.randint(0, 3, (16,), generator=g)
loss_fn = nn.CrossEntropyLoss()
"""


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """Both test plugins installed as a distribution declaring them in the ``nndiag`` group."""
    dist = tmp_path / "site" / "nndiag_test_plugins-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: nndiag-test-plugins\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nndiag]\nrange_probe = nndiag_range_probe\n"
                                           "markdown_writer = nndiag_markdown_writer\n")
    monkeypatch.syspath_prepend(str(PLUGINS))
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    model = tmp_path / "model.py"
    model.write_text(MODEL)
    yield model
    for name in ("nndiag_range_probe", "nndiag_markdown_writer"):
        sys.modules.pop(name, None)


def test_probe_plugin_comes_from_the_entry_point_not_from_nndiag(installed):
    spec = PluginHost().probes()["output-range"]
    assert spec.plugin == "range_probe"
    assert not spec.cls.__module__.startswith("nndiag.")


def test_probe_plugin_takes_its_place_in_the_cost_order(installed):
    order = [s.id for s in PluginHost().select()]
    assert order.index("params") < order.index("output-range") < order.index("data")


def test_probe_plugin_gets_csv_rows_plot_and_thresholds_table(installed, tmp_path):
    out_csv, out_html = tmp_path / "r.csv", tmp_path / "r.html"
    result = CliRunner().invoke(main, ["check", str(installed), "--probe", "output-range", "--probe", "params",
                                       "--set", "output-range.max_abs=2.5", "--csv", str(out_csv),
                                       "--html", str(out_html)])
    assert result.exit_code == 1, result.output  # the 20x-scaled inputs push outputs past 2.5
    rows = [r for r in csv.DictReader(io.StringIO(out_csv.read_text())) if r["probe"] == "output-range"]
    kinds = {r["kind"] for r in rows}
    assert kinds == {"finding", "metric"}
    assert any(r["metric"] == "max_abs_output" and r["kind"] == "metric" for r in rows)
    assert all(float(r["limit"]) == 2.5 for r in rows if r["kind"] == "finding")

    page = out_html.read_text()
    article = page.split('<h3 class="mono">output-range</h3>', 1)[1].split("</article>", 1)[0]
    assert "The model&#x27;s outputs stay within a bound" in article  # description, from the class
    assert "<strong>Largest |output| per unit</strong>" in article and "<svg" in article  # its plot
    assert "Thresholds (applied values, defaults and their sources)" in article
    table = article.split("Thresholds (applied values", 1)[1]
    assert "max_abs" in table and "2.5" in table and "test plugin: an arbitrary bound" in table


def test_probe_plugin_hint_ends_the_assertion_message(installed):
    report = nndiag.check(installed, probes=["output-range"], settings={"output-range": {"max_abs": 2.5}})
    with pytest.raises(NndiagAssertionError) as info:
        assert_report_ok(report)
    message = str(info.value)
    assert "output-range  unit " in message  # the aligned findings table
    assert message.splitlines()[-1] == ("hint: outputs out of range: scale down the last layer's init "
                                        "(the test plugin's hint)")


def test_writer_plugin_is_listed_and_reachable_from_the_cli(installed, tmp_path):
    listing = CliRunner().invoke(main, ["writers"])
    assert listing.exit_code == 0
    assert any(line.startswith("markdown") and ".md" in line for line in listing.output.splitlines())
    by_format, by_suffix = tmp_path / "a.txt", tmp_path / "b.md"
    result = CliRunner().invoke(main, ["check", str(installed), "--probe", "params",
                                       "--report", f"markdown={by_format}", "--report", str(by_suffix)])
    assert result.exit_code == 0, result.output
    for path in (by_format, by_suffix):
        text = path.read_text()
        assert text.startswith("| subject | probe | status | summary |") and "| params | pass |" in text
    bad = CliRunner().invoke(main, ["check", str(installed), "--report", "nosuch=x.out"])
    assert bad.exit_code == 2 and "No report writer for the format 'nosuch'" in bad.output
    assert "markdown" in bad.output.split("Registered formats:", 1)[1]


def test_writer_plugin_is_reachable_from_the_pytest_plugin(installed, pytester):
    pytester.makepyfile(test_m=f'''
        def test_model(nndiag):
            nndiag.check({str(installed)!r}, probes=["params"])
    ''')
    result = pytester.runpytest("--nndiag-report", "session.md", "--nndiag-report", "markdown=other.txt",
                                "-p", "no:randomly")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["nndiag report: *session.md", "nndiag report: *other.txt"])
    for name in ("session.md", "other.txt"):
        assert "| params | pass |" in (pytester.path / name).read_text()
