"""Drawing the plain-data charts of :mod:`nndiag.charts` as inline SVG: one function per kind,
none per probe. A built-in probe and a third-party one get the same drawing.

:func:`draw` takes a Line or HBar and returns a :class:`~nndiag.writers.svg.Plot` (or None when
there is nothing finite to draw); Notes and Tables are laid out by the HTML page itself.
"""

from __future__ import annotations

import math
from typing import Any

from nndiag.charts import HBar, Line
from nndiag.charts import finite
from nndiag.writers.svg import MAX_BARS, SERIES, Plot, figure_svg, label, log_axis

_DASH = {"solid": "-", "dashed": "--", "dotted": ":", "dashdot": "-.", "densely-dotted": (0, (1, 1))}


def _color(index: int) -> str:
    return SERIES[int(index) % len(SERIES)]


def _dash(name: str) -> Any:
    return _DASH.get(name, "-")


def draw(chart: Any, salt: str) -> Plot | None:
    """The SVG plot of ``chart`` (ids made distinct by ``salt``); None when it holds nothing to draw."""
    if isinstance(chart, Line):
        return _line(chart, salt)
    if isinstance(chart, HBar):
        return _hbar(chart, salt)
    return None


def _points(xs: Any, ys: Any, log_x: bool) -> list[tuple[float, float]]:
    out = []
    for x, y in zip(xs or (), ys or ()):
        x, y = finite(x), finite(y)
        if x is not None and y is not None and (not log_x or x > 0):
            out.append((x, y))
    return out


def _line(c: Line, salt: str) -> Plot | None:
    lines = [(s, _points(s.x if s.x is not None else c.x, s.y, c.log_x)) for s in c.series]
    lines = [(s, pts) for s, pts in lines if pts][: len(SERIES) * 2]
    if not lines:
        return None
    ys = [y for _, pts in lines for _, y in pts]
    log_y = c.log_y
    if log_y == "auto":
        marks_y = [m.value for m in c.marks if m.axis == "y" and m.value]
        every = ys + marks_y
        log_y = all(y > 0 for y in every) and max(every) / min(every) > 30
    log_y = bool(log_y) and all(y > 0 for y in ys)

    def paint(ax):
        if c.log_x:
            log_axis(ax, "x")
        if log_y:
            log_axis(ax, "y")
        for b in c.bands:
            if b.axis == "x" and (not c.log_x or 0 < b.low < b.high):
                ax.axvspan(b.low, b.high, color=_color(b.color), alpha=b.alpha, lw=0, label=label(b.label) or None)
            elif b.axis == "y":
                ax.axhspan(b.low, b.high, color=_color(b.color), alpha=b.alpha, lw=0, label=label(b.label) or None)
        for s, pts in lines:
            ax.plot(*zip(*pts), lw=s.width, alpha=s.alpha, color=_color(s.color), ls=_dash(s.dash),
                    marker=(s.marker or None), label=label(s.name) or None)
        if c.ylim:
            ax.set_ylim(*c.ylim)
        if c.xlim:
            ax.set_xlim(*c.xlim)
        for m in c.marks:
            if m.axis == "y" and (not log_y or m.value > 0):
                ax.axhline(m.value, color=_color(m.color), lw=m.width, ls=_dash(m.dash), label=label(m.label) or None)
            elif m.axis == "x" and (not c.log_x or m.value > 0):
                ax.axvline(m.value, color=_color(m.color), lw=m.width, ls=_dash(m.dash), label=label(m.label) or None)
        ax.set_xlabel(label(c.xlabel))
        ax.set_ylabel(label(c.ylabel) + (" (log scale)" if log_y and "log" not in c.ylabel else ""))

    svg = figure_svg(paint, height_in=c.height, salt=salt)
    return Plot(label(c.title, 80), svg, c.caption or _line_caption(c, lines))


def _line_caption(c: Line, lines: list) -> str:
    n = max((len(s.y) for s, _ in lines), default=0)
    dropped = sum(len(s.y) - len(pts) for s, pts in lines)
    cap = f"{len(lines)} series over {n} points"
    if dropped:
        cap += f"; {dropped} non-finite or missing value(s) left out"
    xs = [m for m in c.marks if m.axis == "x"]
    if xs:
        cap += "; dotted lines: " + ", ".join(f"{m.label} ({m.value:g})" for m in xs[:12])
    return cap + "."


def _hbar(c: HBar, salt: str) -> Plot | None:
    """Horizontal bars, one per named row (top to bottom), marks as vertical lines.

    On a log axis a zero or missing value is a red cross at the left edge, labelled ``missing``.
    """
    if not c.labels or all(finite(v) is None for v in c.values):
        return None
    n = min(len(c.labels), MAX_BARS)
    names = [label(x, 40) for x in c.labels[:n]]
    vals = [finite(v) for v in list(c.values[:n]) + [None] * (n - len(c.values[:n]))]
    dots = [finite(v) for v in (c.dots.y if c.dots is not None else ())][:n]
    limits = [m for m in c.marks if m.axis == "x"]
    positive = [v for v in vals + dots if v is not None and v > 0]
    floor = 1e-12
    if c.log and positive:
        floor = 10 ** math.floor(math.log10(min(positive + [m.value for m in limits if m.value > 0])) - 0.5)

    def paint(ax):
        ys = list(range(n))
        if c.log:
            log_axis(ax, "x")
            ok = [(y, v) for y, v in zip(ys, vals) if v is not None and v > 0]
            if ok:
                ax.barh([y for y, _ in ok], [v - floor for _, v in ok], left=floor, color=SERIES[0], height=0.65)
            for y in [y for y, v in zip(ys, vals) if v is None or v <= 0]:
                ax.plot([floor * 1.6], [y], marker="x", color=SERIES[3], ms=6, mew=1.5, ls="none")
                ax.text(floor * 2.6, y, label(c.missing, 30), va="center", fontsize=7.5, color=SERIES[3])
            ax.set_xlim(left=floor)
        else:
            ax.barh(ys, [v if v is not None else 0 for v in vals], color=SERIES[0], height=0.65)
            if c.xlim:
                ax.set_xlim(*c.xlim)
            if c.value_format == "percent":
                span = (c.xlim[1] - c.xlim[0]) if c.xlim else max([abs(v) for v in vals if v is not None] + [1.0])
                for y, v in zip(ys, vals):
                    if v is not None:
                        ax.text(v + span * 0.01, y, f"{v:.0%}", va="center", fontsize=7.5)
        if c.dots is not None and c.dots.name:
            pts = [(v, y) for y, v in zip(ys, dots) if v is not None and (v > 0 or not c.log)]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3.5, ls="none", color=_color(c.dots.color), label=label(c.dots.name))
        for m in limits:
            ax.axvline(m.value, color=_color(m.color), lw=m.width, ls=_dash(m.dash), label=label(m.label) or None)
        ax.set_yticks(ys, names)
        ax.set_ylim(n - 0.5, -0.5)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(label(c.xlabel))
        if c.log and limits:  # show where the limits lie even when every value is far from them
            lo, hi = ax.get_xlim()
            ax.set_xlim(floor, max([hi] + [m.value * 3 for m in limits]))

    height = min(16.0, max(1.2, 0.24 * n + 0.6))
    left = 0.3 + 0.062 * max((len(x) for x in names), default=4)  # ~ width of 8.1 pt labels
    svg = figure_svg(paint, height_in=height, salt=salt, left_in=left)
    cap = c.caption or f"{len(c.labels)} rows" + (f", first {MAX_BARS} shown" if len(c.labels) > MAX_BARS else "") + "."
    return Plot(label(c.title, 80), svg, cap)
