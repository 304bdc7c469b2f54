"""The HTML report: one self-contained file (styles, script and plots inline; nothing fetched).

Layout (docs/reports.md explains every part): a summary banner with the count of each status per
subject and a strip of one coloured box per probe, then per subject and per probe its status,
summary, findings table, plots (learning-rate range curve, overfit loss curve, gradient norms,
dead and saturated fractions), the parameter table, and folded details: metrics, the per-layer
numbers behind the plots, the thresholds the probe ran with (applied value, default, source),
and the traceback of an error.

Everything that comes from the user or the probes (subject and module names, messages, metric
names) is escaped with :func:`html.escape`; plots are inline SVG drawn by :mod:`nndiag.writers.draw`
from the plain-data charts each result carries (:mod:`nndiag.charts`),
whose text matplotlib escapes and whose markup is checked for active content. A Content-Security-
Policy meta tag allows only the one inline script (by its hash) and inline styles, so even a
missed escape could not run a script or load anything from the network.

The inline script does two things, both driven by the query string only: ``?theme=dark`` or
``?theme=light`` forces a palette (the default follows ``prefers-color-scheme``), and ``?selftest``
records script errors, ``alert`` calls and each plot's rendered size into ``<pre id="selftest">``
(used by tests/test_report_browser.py through ``chromium --dump-dom``).
"""

from __future__ import annotations

import html as _html
import math
import threading
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from nndiag.writers.theme import CSP, CSS, SCRIPT  # noqa: F401 - CSP/SCRIPT re-exported

if TYPE_CHECKING:  # pragma: no cover
    from nndiag.report import ProbeResult, Report, SubjectReport

STATUSES = ("pass", "warn", "fail", "error", "skip")
MAX_TABLE_ROWS = 500


def esc(value: Any) -> str:
    """Text made safe for HTML content and attribute values."""
    return _html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any) -> str:
    """A metric or cell value as short, escaped text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "\u221e" if value > 0 else "\u2212\u221e"
        if value == int(value) and abs(value) < 1e15:
            return f"{int(value):,}"
        return esc(f"{value:.4g}")
    if isinstance(value, (list, tuple)):
        inner = ", ".join(fmt(v) for v in value[:12])
        more = ", \u2026" if len(value) > 12 else ""
        return f"[{inner}{more}]"
    if isinstance(value, Mapping):
        return esc(", ".join(f"{k}: {v}" for k, v in list(value.items())[:12]))
    return esc(value)


# ----------------------------------------------------------------------------- pieces


def _badge(status: Any) -> str:
    s = esc(status)
    return f'<span class="badge st-{s}">{s}</span>'


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = (),
           cls: str = "") -> str:
    """An HTML table; every cell is formatted by :func:`fmt` (so escaped) unless it is a _Raw."""
    numeric = set(numeric)
    head = "".join(f'<th{" class=num" if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        if n >= MAX_TABLE_ROWS:
            body.append(f'<tr><td colspan="{len(headers)}" class="note">rows after {MAX_TABLE_ROWS} '
                        "left out</td></tr>")
            break
        cells = []
        for i, v in enumerate(row):
            text = v.html if isinstance(v, _Raw) else fmt(v)
            cells.append(f'<td{" class=num" if i in numeric else ""}>{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    c = f' class="{cls}"' if cls else ""
    return (f'<div class="tablewrap"><table{c}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


class _Raw:
    """Already-safe HTML for a table cell (built here from escaped parts only)."""

    def __init__(self, html: str) -> None:
        self.html = html


def _source(f) -> str:
    """The user's source line of a finding (``file:line``), under its ``where``; "" when unknown."""
    if not (f.file and f.line):
        return ""
    return f'<br><span class="mono muted" title="source">{esc(f.file)}:{int(f.line)}</span>'


def _findings(result: "ProbeResult") -> str:
    findings = list(result.findings or ())
    if not findings:
        return ""
    rows = [(_Raw(_badge(f.severity)), _Raw(f'<span class="mono">{esc(f.where)}</span>' + _source(f)),
             _Raw(esc(f.message)), f.metric or "", f.value, f.limit) for f in findings]
    return _table(("severity", "where", "message", "metric", "value", "limit"), rows, numeric=(3, 4, 5),
                  cls="findings")


def _metrics(result: "ProbeResult") -> str:
    metrics = dict(result.metrics or {})
    if not metrics:
        return ""
    rows = [(_Raw(f'<span class="mono">{esc(k)}</span>'), v) for k, v in metrics.items()]
    return (f"<details><summary>Metrics ({len(metrics)})</summary>"
            f"{_table(('metric', 'value'), rows, numeric=(1,))}</details>")


def _dict_rows(rows: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[list[Any]]]:
    cols: list[str] = []
    for r in rows[:MAX_TABLE_ROWS]:
        for k in r:
            if str(k) not in cols and len(cols) < 30:
                cols.append(str(k))
    return cols, [[r.get(c) for c in cols] for r in rows]


def _data_tables(result: "ProbeResult") -> str:
    """Folded tables for the structured ``data`` entries not shown elsewhere (per-layer numbers,
    limits); plain number series are only named."""
    data = result.data or {}
    skip = {c.replaces for c in _charts(result) if getattr(c, "kind", "") == "table" and c.replaces}
    skip.add("charts")  # the watch's timelines: drawn as plots
    parts, series = [], []
    for key, value in data.items():
        if key in skip:
            continue
        if isinstance(value, Mapping) and value:
            rows = [(_Raw(f'<span class="mono">{esc(k)}</span>'), v) for k, v in value.items()]
            parts.append(f"<details><summary>{esc(key)}</summary>{_table(('key', 'value'), rows)}</details>")
        elif isinstance(value, (list, tuple)) and value and all(isinstance(r, Mapping) for r in value):
            cols, rows = _dict_rows(value)
            parts.append(f"<details><summary>{esc(key)} ({len(value)} rows)</summary>"
                         f"{_table(cols, rows)}</details>")
        elif isinstance(value, (list, tuple)):
            series.append(f"{esc(key)} ({len(value)} values)")
    if series:
        parts.append(f'<p class="note">Series used by the plots: {", ".join(series)}.</p>')
    return "".join(parts)


def _thresholds(result: "ProbeResult") -> str:
    """The settings the probe ran with (carried by the result), beside their defaults and sources."""
    fields = [f for f in (result.settings or ()) if isinstance(f, Mapping)]
    if not fields:
        return ""
    rows = [(_Raw(f'<span class="mono">{esc(f.get("name"))}</span>'), f.get("value", f.get("default")),
             f.get("default"), f.get("source", ""), f.get("help", "")) for f in fields]
    changed = sum(f.get("value", f.get("default")) != f.get("default") for f in fields)
    note = (f"{changed} setting(s) differ from the default, from the command line or nndiag_config."
            if changed else "Every setting at its default; the command line or nndiag_config can override them.")
    return ("<details><summary>Thresholds (applied values, defaults and their sources)</summary>"
            f'<p class="note">{esc(note)}</p>'
            f"{_table(('setting', 'applied', 'default', 'source', 'meaning'), rows, numeric=(1, 2))}</details>")


def _charts(result: "ProbeResult") -> list[Any]:
    """The charts of a result: its own, then any plain-data line charts in ``data["charts"]`` (the
    in-training watch's timelines, kept in ``data`` by older writers' readers)."""
    from nndiag.charts import chart_from_dict

    extra = (result.data or {}).get("charts") if isinstance(result.data, Mapping) else None
    found = [chart_from_dict(c) for c in extra] if isinstance(extra, list) else []
    return list(result.charts or ()) + [c for c in found if c is not None]


def _chart_table(t: Any) -> str:
    rows = []
    last = len(t.rows) - 1
    for i, row in enumerate(t.rows):
        cells = []
        for j, v in enumerate(row):
            if t.total and i == last and j == 0:
                cells.append(_Raw(f"<strong>{esc(v)}</strong>"))
            elif j in t.mono and not (t.total and i == last):
                cells.append(_Raw(f'<span class="mono">{esc(v)}</span>'))
            else:
                cells.append(v)
        rows.append(cells)
    cls = "params" if t.replaces == "layers" else ""
    return f"<h4>{esc(t.title)}</h4>" + _table(t.columns, rows, numeric=t.numeric, cls=cls)


def _plots(result: "ProbeResult", si: int, pj: int) -> str:
    """Every chart of the result, drawn by kind; a chart that cannot be drawn becomes a note."""
    from nndiag.writers import draw as drawing
    from nndiag.writers.svg import prefix_ids

    out = []
    k = 0
    for n, chart in enumerate(_charts(result)):
        kind = getattr(chart, "kind", "")
        if kind == "note":
            out.append(f'<p class="note">{esc(chart.text)}</p>')
            continue
        if kind == "table":
            out.append(_chart_table(chart))
            continue
        try:
            p = drawing.draw(chart, f"nndiag-{si}.{pj}-{result.probe}-{n}")
        except Exception as exc:  # noqa: BLE001 - a malformed series costs its plot, never the report
            out.append(f'<p class="note">The plot could not be drawn ({esc(type(exc).__name__)}: {esc(exc)}).</p>')
            continue
        if p is None:
            continue
        out.append(f'<figure class="plot" id="s{si}-p{pj}-plot{k}">'
                   f"<figcaption><strong>{esc(p.title)}</strong></figcaption>{prefix_ids(p.svg, f's{si}p{pj}f{k}-')}"
                   f"<figcaption>{esc(p.caption)}</figcaption></figure>")
        k += 1
    return "".join(out)


def _probe(result: "ProbeResult", si: int, pj: int) -> str:
    status = esc(result.status)
    desc = result.description
    parts = [
        f'<article class="probe st-{status}" id="s{si}-p{pj}">',
        f'<div class="probe-head">{_badge(result.status)}<h3 class="mono">{esc(result.probe)}</h3>'
        f'<span class="secs muted">{result.seconds:.2f} s</span></div>',
    ]
    if desc:
        parts.append(f'<p class="desc muted">{esc(desc)}</p>')
    parts.append(f'<p class="summary">{esc(result.summary)}</p>')
    parts.append(_findings(result))
    parts.append(_plots(result, si, pj))
    parts.append(_metrics(result))
    parts.append(_data_tables(result))
    parts.append(_thresholds(result))
    if result.details:
        parts.append(f"<details><summary>Traceback</summary><pre>{esc(result.details)}</pre></details>")
    parts.append("</article>")
    return "".join(parts)


def _banner(report: "Report") -> str:
    counts = report.counts()
    rows = []
    for si, s in enumerate(report.subjects):
        c = counts.get(s.subject, {})
        cells = "".join(
            f'<td class="num"><span class="count st-{st}{" zero" if not c.get(st) else ""}">{c.get(st, 0)}</span></td>'
            for st in STATUSES)
        strip = "".join(
            f'<a href="#s{si}-p{pj}" class="st-{esc(r.status)}" title="{esc(r.probe)}: {esc(r.status)}"></a>'
            for pj, r in enumerate(s.results))
        secs = sum(r.seconds for r in s.results)
        rows.append(f'<tr><td><a href="#s{si}" class="mono">{esc(s.subject)}</a></td>'
                    f"<td>{_badge(s.status)}</td>{cells}<td><div class=strip>{strip}</div></td>"
                    f'<td class="num muted">{secs:.1f} s</td></tr>')
    head = "".join(f'<th class="num">{st}</th>' for st in STATUSES)
    overall = ""
    if len(report.subjects) > 1:
        overall = (f"<p>{len(report.subjects)} subjects; overall status {_badge(report.status)}</p>")
    return ('<section class="banner" aria-label="summary">' + overall +
            f'<div class="tablewrap"><table><thead><tr><th>subject</th><th>status</th>{head}'
            f'<th>probes</th><th class="num">time</th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
            "</div></section>")


def _subject(s: "SubjectReport", si: int) -> str:
    parts = [f'<section class="subject" id="s{si}"><h2><span class="mono">{esc(s.subject)}</span> '
             f"{_badge(s.status)}</h2>"]
    if s.load_error:
        parts.append(f'<div class="loaderr"><p><strong>Could not load this subject.</strong> '
                     f"{esc(s.load_error)}</p>")
        if s.load_error_details:
            parts.append(f"<details><summary>Traceback</summary><pre>{esc(s.load_error_details)}</pre></details>")
        parts.append("</div>")
    for pj, r in enumerate(s.results):
        parts.append(_probe(r, si, pj))
    parts.append("</section>")
    return "".join(parts)


def _import_plotting() -> None:
    try:
        from nndiag.writers import svg

        svg._mpl()
        svg.figure_svg(lambda ax: ax.plot([1, 2], [1, 2]), height_in=1.0, salt="preload")  # fonts
    except Exception:  # noqa: BLE001 - render() reports any real problem itself
        pass


def preload() -> threading.Thread:
    """Import matplotlib (and load its fonts) in a background thread.

    matplotlib costs about 0.7 s of CPU to import; a caller that knows an HTML report will be
    wanted (``nndiag check --html``) can call this before running the probes, so that the
    import overlaps with them instead of delaying the report. :func:`render` works the same
    whether or not this was called (Python's import lock makes it wait for an unfinished import).
    """
    thread = threading.Thread(target=_import_plotting, name="nndiag-preload-matplotlib", daemon=True)
    thread.start()
    return thread


def _run_line(report: "Report") -> str:
    """The run metadata under the title: versions, device, threads, seed, host, start time."""
    from nndiag.run_metadata import summary_line

    meta = dict(getattr(report, "metadata", None) or {})
    line = summary_line(meta)
    if not line:
        return ""
    command = " ".join(str(a) for a in meta.get("command") or ())
    title = f' title="{esc(command)}"' if command else ""
    return f'<p class="muted run"{title}>{esc(line)}</p>'


def render(report: "Report") -> str:
    """The whole report as one HTML document (UTF-8 text)."""
    from nndiag.report import SCHEMA_VERSION

    try:
        from importlib.metadata import version

        nndiag_version = version("nndiag")
    except Exception:  # noqa: BLE001
        nndiag_version = "unknown"
    names = [s.subject for s in report.subjects]
    title = "nndiag report: " + (names[0] if len(names) == 1 else f"{len(names)} subjects")
    body = _banner(report) + "".join(_subject(s, si) for si, s in enumerate(report.subjects))
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>{esc(title)}</title><style>{CSS}</style><script>{SCRIPT}</script></head>\n"
        f"<body><main><h1>nndiag report</h1>{_run_line(report)}{body}"
        f"<footer>nndiag {esc(nndiag_version)}, report schema {esc(SCHEMA_VERSION)}; "
        "self-contained: nothing in this file is fetched from the network."
        "</footer></main></body></html>\n"
    )
