"""Matplotlib as inline SVG for the HTML report: setup, theming, sanitising.

Theming: text, axes and grid are drawn in sentinel colours that :func:`figure_svg` turns into CSS
variables (``var(--plot-fg, #888)``, ...) so the inline SVG follows the page's light or dark
palette; the figure and axes backgrounds are transparent. Series use ``var(--c1)`` ... likewise.

Safety: every label goes through :func:`label` (control characters dropped, length capped);
matplotlib escapes ``<``, ``>`` and ``&`` in SVG text; :func:`figure_svg` then drops comments,
metadata and unreferenced ids and refuses an SVG holding a ``<script``, ``<foreignObject`` or an
``on...=`` attribute.

matplotlib is imported lazily, inside :func:`_mpl`, with the Agg backend. What to draw comes from
:mod:`nndiag.writers.draw`, which draws the plain-data charts of :mod:`nndiag.charts`.
"""

from __future__ import annotations


import io
import math
import re
from dataclasses import dataclass
from typing import Any, Callable

# Sentinel colours: unusual greys that no series uses; replaced by CSS variables in the SVG.
FG = "#818283"
GRID = "#c1c2c4"
SERIES = ("#1f77b5", "#ff7f0f", "#2ca02d", "#d62729", "#9467be")  # tab10, off by one digit
_CSS_FOR = {FG: "var(--plot-fg,#888)", GRID: "var(--plot-grid,#bbb)"}
_CSS_FOR.update({c: f"var(--c{i + 1},{c})" for i, c in enumerate(SERIES)})

MAX_BARS = 80  # per-layer plots show at most this many rows (the table below has them all)
WIDTH_IN = 7.0  # figure width in inches (SVG points = 72 per inch)


@dataclass(frozen=True)
class Plot:
    """One figure: a title, the SVG markup (safe to inline) and a one-line caption."""

    title: str
    svg: str
    caption: str = ""


class UnsafeSVG(ValueError):
    """The SVG text would carry active content; the plot is dropped."""


# ----------------------------------------------------------------------------- helpers

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def label(text: Any, limit: int = 48) -> str:
    """A user-supplied name made fit for a plot label: no control characters, at most ``limit`` long."""
    s = _CONTROL.sub(" ", str(text))
    if len(s) > limit:
        s = s[: limit - 1] + "\u2026"
    return s


def _mpl():
    """matplotlib with the Agg backend, Figure and the SVG canvas (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.ticker  # noqa: F401 - used as matplotlib.ticker
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    return matplotlib, Figure, FigureCanvasSVG


def _rc(salt: str) -> dict[str, Any]:
    return {
        "svg.fonttype": "none",  # real <text>, escaped by matplotlib; small and selectable
        "svg.hashsalt": salt,  # deterministic ids, distinct between figures of one page
        "text.parse_math": False,  # "$" in a module name is text, not mathtext
        "text.usetex": False,
        "font.size": 9,
        "font.family": "sans-serif",
        "text.color": FG,
        "axes.labelcolor": FG,
        "axes.edgecolor": FG,
        "axes.titlecolor": FG,
        "xtick.color": FG,
        "ytick.color": FG,
        "xtick.labelcolor": FG,
        "ytick.labelcolor": FG,
        "axes.facecolor": "none",
        "figure.facecolor": "none",
        "savefig.facecolor": "none",
        "savefig.edgecolor": "none",
        "savefig.transparent": True,
        "legend.frameon": False,
        "legend.labelcolor": FG,
        "axes.grid": True,
        "axes.axisbelow": True,
        "grid.color": GRID,
        "grid.linewidth": 0.5,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "path.simplify": True,
    }


_COMMENT = re.compile(r"<!--.*?-->", re.S)
_PROLOG = re.compile(r"<\?xml.*?\?>|<!DOCTYPE[^>]*>", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>", re.S)
_ID_ATTR = re.compile(r'\sid="([^"]*)"')
_FONT_FAMILY = re.compile(r"font-family:[^;\"]*")
_UNSAFE = re.compile(r"<\s*(script|foreignObject|iframe|object|embed)\b|<[^>]*\son[a-z]+\s*=|javascript:",
                     re.I)


def clean_svg(svg: str) -> str:
    """Matplotlib's SVG made fit to inline: no prolog, comments, metadata or unused ids; sentinel
    colours become CSS variables; UnsafeSVG when anything active is left."""
    svg = _PROLOG.sub("", svg)
    svg = _COMMENT.sub("", svg)
    svg = _METADATA.sub("", svg)
    used = set(re.findall(r'(?:href="#|url\(#)([^")]+)', svg))
    svg = _ID_ATTR.sub(lambda m: m.group(0) if m.group(1) in used else "", svg)
    svg = _FONT_FAMILY.sub("font-family: 'DejaVu Sans', Verdana, sans-serif", svg)
    for sentinel, css in _CSS_FOR.items():
        svg = svg.replace(sentinel, css)
    svg = re.sub(r'<svg\b', '<svg role="img"', svg, count=1)
    if _UNSAFE.search(svg):
        raise UnsafeSVG("the SVG holds active content")
    return svg.strip()


def prefix_ids(svg: str, prefix: str) -> str:
    """Every ``id`` of ``svg`` and each reference to it (``href="#..."``, ``url(#...)``) prefixed,
    so several inline SVGs of one page can never share an id."""
    svg = re.sub(r'(\sid=")([^"]+")', lambda m: m.group(1) + prefix + m.group(2), svg)
    return re.sub(r'(href="#|url\(#)', lambda m: m.group(1) + prefix, svg)


def figure_svg(draw: Callable[[Any], None], *, height_in: float, salt: str, width_in: float = WIDTH_IN,
               left_in: float = 0.75, bottom_in: float = 0.5, top_in: float = 0.12, right_in: float = 0.2) -> str:
    """Make a figure with one axes, let ``draw(ax)`` fill it, and return the cleaned SVG text.

    ``height_in`` is the height of the plot itself; the labelled artists get a legend in rows of
    four along the top of the figure, which grows by the legend's height (so the legend never
    covers the data and the axes keep their size). Margins are in inches: no layout engine, which
    would cost a second draw.
    """
    matplotlib, Figure, FigureCanvasSVG = _mpl()
    rc = _rc(salt)
    rc["axes.prop_cycle"] = matplotlib.cycler(color=list(SERIES))
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(width_in, height_in))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        draw(ax)
        for axis in (ax.xaxis, ax.yaxis):
            if axis.get_scale() == "log":  # minor ticks on a log axis are most of the drawing time
                axis.set_minor_locator(matplotlib.ticker.NullLocator())
        handles, labels = ax.get_legend_handles_labels()
        legend_in = 0.0
        if labels:
            ncol = min(4, len(labels))
            legend_in = 0.08 + 0.19 * math.ceil(len(labels) / ncol)
            fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.005, 0.995), fontsize=7.5,
                       ncol=ncol, handlelength=1.8, columnspacing=1.2, borderaxespad=0.1)
        total = height_in + legend_in
        fig.set_size_inches(width_in, total)
        left_in = min(left_in, width_in * 0.5)
        fig.subplots_adjust(left=left_in / width_in, right=1 - right_in / width_in,
                            bottom=bottom_in / total, top=1 - (top_in + legend_in) / total)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return clean_svg(buf.getvalue())


# ----------------------------------------------------------------------------- log axes

_SUPER = str.maketrans("-0123456789", "\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")


def pow10_label(v: float, _pos: Any = None) -> str:
    """Tick label for a log axis: ``10⁻³`` at powers of ten, nothing elsewhere (no mathtext)."""
    if not v or v <= 0 or not math.isfinite(v):
        return ""
    e = math.log10(v)
    if abs(e - round(e)) > 1e-6:
        return ""
    e = int(round(e))
    return {0: "1", 1: "10"}.get(e, "10" + str(e).translate(_SUPER))


def log_axis(ax: Any, which: str = "x") -> None:
    """Log scale on ``which`` axis with ticks at powers of ten labelled ``10⁻³`` (no mathtext)."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, numticks=12))
    axis.set_major_formatter(FuncFormatter(pow10_label))


