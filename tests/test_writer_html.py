"""The HTML report: every section present, self-contained, escaped, and robust to odd probe data."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
from html.parser import HTMLParser

import pytest

from nndiag import chartkit
from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport
from nndiag.writers import draw, svg
from nndiag.writers import html as html_writer
from fixtures.demo_report import EVIL, demo_report


class _Collect(HTMLParser):
    """Every start tag with its attributes, and the text of <script> elements."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if tag == "script":
            self.scripts.append("")

    def handle_startendtag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def _parse(page: str) -> _Collect:
    p = _Collect()
    p.feed(page)
    p.close()
    return p


def _assert_inert(page: str) -> None:
    """No element or attribute that could run code or fetch anything, beyond our one script."""
    doc = _parse(page)
    names = [t for t, _ in doc.tags]
    assert "img" not in names and "iframe" not in names and "object" not in names
    assert names.count("script") == 1
    assert doc.scripts == [html_writer.SCRIPT]
    for tag, attrs in doc.tags:
        for key, value in attrs.items():
            assert not key.lower().startswith("on"), (tag, key, value)
            if key.lower() in ("src", "href", "xlink:href", "action", "formaction"):
                assert (value or "").startswith(("#", "data:")), (tag, key, value)
    assert "javascript:" not in page.lower()


@pytest.fixture(scope="module")
def demo_page() -> str:
    import torch  # noqa: F401 - the threshold tables need the registry, which imports torch

    return html_writer.render(demo_report(2))


def test_every_section_is_there(demo_page):
    doc = _parse(demo_page)
    assert demo_page.startswith("<!DOCTYPE html>")
    classes = [a.get("class", "") for _, a in doc.tags]
    assert sum("banner" in c for c in classes) == 1
    assert sum(c.startswith("subject") for c in classes) == 3
    assert sum(c.startswith("probe ") for c in classes) == 20
    # the banner counts each status per subject: demo_0 = 5 pass, 1 warn, 2 fail, 1 error, 1 skip
    banner = demo_page.split('<section class="banner"', 1)[1].split("</section>", 1)[0]
    row0 = banner.split("demo_0.py", 1)[1].split("</tr>", 1)[0]
    assert re.findall(r'class="count st-(\w+)[^"]*">(\d+)<', row0) == [
        ("pass", "5"), ("warn", "1"), ("fail", "2"), ("error", "1"), ("skip", "1")]
    # one figure per plot kind per subject (two subjects with probe results)
    titles = re.findall(r'<figure class="plot" id="[^"]+"><figcaption><strong>([^<]+)</strong>', demo_page)
    assert sorted(titles) == sorted(["Learning-rate range test", "Overfitting one batch", "Gradients per parameter",
                                     "Dead units per layer", "Saturated units per layer"] * 2)
    assert demo_page.count("<svg") == 10
    assert "Parameters per layer" in demo_page
    assert "<th>severity</th><th>where</th><th>message</th>" in demo_page  # findings tables
    assert "Could not load this subject." in demo_page
    assert "Traceback" in demo_page
    assert "Thresholds (applied values, defaults and their sources)" in demo_page
    assert "1 setting(s) differ from the default" in demo_page  # the applied value, not the default
    assert "prefers-color-scheme:dark" in demo_page and ":root.dark" in demo_page


def test_self_contained_and_one_script_allowed_by_hash(demo_page):
    _assert_inert(demo_page)
    digest = base64.b64encode(hashlib.sha256(html_writer.SCRIPT.encode()).digest()).decode()
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', demo_page).group(1)
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    assert not re.search(r"""(src|href)=["']?https?:""", demo_page)
    assert "@import" not in demo_page and "url(http" not in demo_page
    assert len(demo_page.encode()) < 2_000_000


def test_ids_are_unique_across_inline_svgs(demo_page):
    ids = [a["id"] for _, a in _parse(demo_page).tags if "id" in a]
    assert len(ids) == len(set(ids))
    # every internal reference points at an id of the page
    for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', demo_page):
        assert ref in ids, ref


def test_plots_follow_the_theme_through_css_variables(demo_page):
    first = demo_page.split("<svg", 1)[1].split("</svg>", 1)[0]
    assert "var(--plot-fg" in first and "var(--c1" in first
    for sentinel in (svg.FG, svg.GRID) + svg.SERIES:  # only left as var() fallbacks
        assert not re.search(f"(?<!,){sentinel}", demo_page), sentinel
    assert "<!--" not in first and "<metadata" not in first


def test_demo_report_escapes_user_text(demo_page):
    assert EVIL not in demo_page
    assert "&lt;img src=x onerror=alert(1)&gt;" in demo_page
    assert "<script>alert(2)</script>" not in demo_page  # from a traceback
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in demo_page


def test_model_with_an_html_module_name_renders_as_text():
    torch = pytest.importorskip("torch")
    import nndiag

    class Evil(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.add_module(EVIL, torch.nn.Linear(4, 8))
            self.out = torch.nn.Linear(8, 3)

        def forward(self, x):
            return self.out(torch.relu(getattr(self, EVIL)(x)))

    torch.manual_seed(0)
    batch = (torch.randn(32, 4), torch.randint(0, 3, (32,)))
    report = nndiag.check(model=Evil(), batch=batch, loss_fn=torch.nn.CrossEntropyLoss(),
                          probes=["params", "gradients", "dead-neurons"])
    page = html_writer.render(report)
    _assert_inert(page)
    assert EVIL not in page
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert escaped in page.split("Parameters per layer", 1)[1]  # the parameter table
    svgs = re.findall(r"<svg.*?</svg>", page, re.S)
    assert svgs, "the gradients plot should be drawn"
    assert any(escaped in s for s in svgs), "the module name should be an SVG tick label, escaped"


def test_clean_svg_refuses_active_content():
    base = '<svg xmlns="http://www.w3.org/2000/svg"><text>ok</text></svg>'
    assert svg.clean_svg(base).startswith('<svg role="img"')
    for bad in ('<svg><script>alert(1)</script></svg>', '<svg><g onload="alert(1)"/></svg>',
                '<svg><foreignObject><div/></foreignObject></svg>', '<svg><a href="javascript:x"/></svg>'):
        with pytest.raises(svg.UnsafeSVG):
            svg.clean_svg(bad)
    cleaned = svg.clean_svg('<?xml version="1.0"?><!DOCTYPE svg><!-- <img> --><svg><g id="unused"/>'
                              '<path id="used"/><use xlink:href="#used"/></svg>')
    assert "<!--" not in cleaned and "unused" not in cleaned and 'id="used"' in cleaned


def test_malformed_probe_data_never_breaks_the_report(monkeypatch):
    odd = [
        ProbeResult("lr-range", Status.PASS, "odd", data={"lrs": "nope", "losses": [1, 2]}),
        ProbeResult("lr-range", Status.PASS, "odd", data={"lrs": [1e-3, -1, float("nan"), 1e-1],
                                                         "losses": [2.0, "x", None, float("inf")],
                                                         "smoothed": [None]},
                    metrics={"configured_lr": "fast", "suggested_lr_x": float("nan")}),
        ProbeResult("overfit", Status.FAIL, "odd", data={"loss_curve": [float("nan"), float("inf")]}),
        ProbeResult("overfit", Status.FAIL, "odd", data={"loss_curve": [3.0, 2.0, -1.0]},
                    metrics={"target": "0.05"}),
        ProbeResult("gradients", Status.PASS, "odd", data={"layers": [{"param": None, "grad_norm": "big"}, 7,
                                                                      {"max_abs_grad": 0.0}],
                                                           "limits": [1, 2]}),
        ProbeResult("gradients", Status.PASS, "odd", data={"layers": [{"param": "w", "max_abs_grad": 0.0,
                                                                       "connected": False}]}),
        ProbeResult("dead-neurons", Status.PASS, "odd", data={"layers": {"a": 1}}),
        ProbeResult("dead-neurons", Status.PASS, "odd", data={"layers": [{"layer": "a", "dead_fraction": 3.5}]}),
        ProbeResult("saturation", Status.PASS, "odd", data={"layers": [{"layer": "s", "saturated_fraction": None}]}),
        ProbeResult("params", Status.PASS, "odd", data={"layers": [{"layer": 1, "shared_with": 5,
                                                                    "output_shape": "?"}]}),
        ProbeResult("custom-plugin", Status.WARN, "odd", (Finding(Status.WARN, "m", value=float("nan")),),
                    {"x": [1, 2], "y": {"a": 1}}, {"rows": [{"a": 1}, {"b": [1] * 50}], "blob": object()}),
    ]
    # the chart recipes read the odd data defensively: no exception, and what they make draws
    recipes = (chartkit.lr_sweep_chart, chartkit.loss_curve_chart, chartkit.gradient_chart, chartkit.params_table,
               lambda r: chartkit.fraction_chart(r, None, ("dead_fraction", "saturated_fraction"), title="t", what="w"))
    odd = [dataclasses.replace(r, charts=tuple(c for c in (f(r) for f in recipes) if c is not None)) for r in odd]
    page = html_writer.render(Report((SubjectReport("odd.py", tuple(odd)),)))
    assert page.count('class="probe ') == len(odd)
    _assert_inert(page)

    def boom(chart, salt):
        if "overfit" in salt:
            raise ValueError("<b>bad series</b>")
        return real(chart, salt)

    real = draw.draw
    monkeypatch.setattr(draw, "draw", boom)
    page = html_writer.render(demo_report(1))
    assert "The plot could not be drawn (ValueError: &lt;b&gt;bad series&lt;/b&gt;)" in page
    assert page.count("<svg") == 4  # the other plots are still there


def test_log_tick_labels_are_plain_text():
    assert svg.pow10_label(1e-7) == "10\u207b\u2077"
    assert svg.pow10_label(100) == "10\u00b2"
    assert svg.pow10_label(1) == "1" and svg.pow10_label(10) == "10"
    assert svg.pow10_label(3e-3) == "" and svg.pow10_label(0) == ""


def test_render_is_deterministic():
    a = html_writer.render(demo_report(1))
    b = html_writer.render(demo_report(1))
    assert a == b


def test_preload_imports_matplotlib_in_the_background():
    import sys

    thread = html_writer.preload()
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert "matplotlib.figure" in sys.modules and "matplotlib.backends.backend_svg" in sys.modules
    assert html_writer.render(demo_report(1)).count("<svg") == 5
