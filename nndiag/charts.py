"""Charts as plain data: the contract between a probe (which knows what to plot) and the HTML
writer (which knows how to draw). No matplotlib here, and nothing keyed by probe id.

A probe returns these from ``Probe.charts(result)`` (or ``out.chart(...)`` while it runs); the
report carries them (``ProbeResult.charts``, and as dicts in the JSON under ``"charts"``); the HTML
writer draws each kind generically. Three kinds:

- :class:`Line`: named :class:`Series` over x, with :class:`Mark` lines (limits, targets,
  suggested values) and :class:`Band` ranges; linear or log axes.
- :class:`HBar`: one horizontal bar per named row (per layer, per parameter), with limit marks,
  optional dots of a second quantity, and a label for rows with no value.
- :class:`Note`: a sentence instead of a plot ("too few finite values to draw one").
- :class:`Table`: rows of values with named columns (the parameters per layer), shown in place of
  the generic table of the ``data`` entry it presents (``replaces``).

Colours are indices into the page palette (0 blue, 1 orange, 2 green, 3 red, 4 purple); dashes are
``solid``, ``dashed``, ``dotted``, ``dashdot`` or ``densely-dotted``. Values may be None (a gap).

:func:`chart_from_dict` reads the JSON form back, and also the shorter line-chart dicts the
in-training watch stores in ``data["charts"]`` (``limits`` are y marks, ``marks`` x marks).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

DASHES = ("solid", "dashed", "dotted", "dashdot", "densely-dotted")


def _num(x: Any) -> float | None:
    """``x`` as a finite float, or None."""
    if isinstance(x, bool) or x is None:
        return None
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, (int, float)) and math.isfinite(float(x)):
        return float(x)
    return None


def numbers(values: Any) -> tuple[float | None, ...]:
    """A sequence as finite floats, None where a value is missing or not finite; () otherwise."""
    if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Sequence):
        return ()
    return tuple(_num(v) for v in values)


@dataclass(frozen=True)
class Series:
    """One named line (or dot series) of a chart."""

    name: str
    y: tuple[float | None, ...]
    x: tuple[float | None, ...] | None = None  # None: the chart's x
    color: int = 0
    width: float = 1.5
    alpha: float = 1.0
    dash: str = "solid"
    marker: str = ""  # "" (line only), "o" or "x"


@dataclass(frozen=True)
class Mark:
    """A straight line across the plot at ``value`` on ``axis`` ("x": vertical, "y": horizontal)."""

    label: str
    value: float
    axis: str = "x"
    color: int = 2
    dash: str = "dashed"
    width: float = 1.2


@dataclass(frozen=True)
class Band:
    """A shaded range ``low..high`` on ``axis``."""

    label: str
    low: float
    high: float
    axis: str = "x"
    color: int = 2
    alpha: float = 0.12


@dataclass(frozen=True)
class Line:
    """Series over x: loss curves, sweeps, timelines. ``log_y="auto"`` uses a log y axis when all
    values are positive and span more than 30x."""

    title: str
    x: tuple[float | None, ...]
    series: tuple[Series, ...]
    xlabel: str = "step"
    ylabel: str = ""
    log_x: bool = False
    log_y: bool | str = False
    marks: tuple[Mark, ...] = ()
    bands: tuple[Band, ...] = ()
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    caption: str = ""
    height: float = 2.8
    kind: str = "line"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return _as_dict(self)


@dataclass(frozen=True)
class HBar:
    """One horizontal bar per row, top to bottom. On a log axis a row with no value (or zero) is a
    red cross labelled ``missing``; ``value_format="percent"`` writes each bar's value beside it."""

    title: str
    labels: tuple[str, ...]
    values: tuple[float | None, ...]
    xlabel: str = ""
    log: bool = False
    marks: tuple[Mark, ...] = ()
    dots: Series | None = None
    xlim: tuple[float, float] | None = None
    value_format: str = ""
    missing: str = "no value"
    caption: str = ""
    kind: str = "hbar"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return _as_dict(self)


@dataclass(frozen=True)
class Note:
    """A sentence shown where a plot would be."""

    text: str
    kind: str = "note"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return _as_dict(self)


@dataclass(frozen=True)
class Table:
    """A table a probe presents itself. ``mono`` columns are set in a fixed-width font (module
    names), ``numeric`` ones right-aligned; ``total`` makes the last row bold."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    numeric: tuple[int, ...] = ()
    mono: tuple[int, ...] = ()
    total: bool = False
    replaces: str = ""
    kind: str = "table"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return _as_dict(self)


Chart = Line | HBar | Note | Table


def _as_dict(obj: Any) -> dict[str, Any]:
    return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return _as_dict(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _marks(items: Any, axis: str | None = None) -> tuple[Mark, ...]:
    out = []
    for m in items if isinstance(items, Sequence) and not isinstance(items, str) else ():
        if not isinstance(m, Mapping):
            continue
        ax = axis or str(m.get("axis", "x"))
        value = _num(m.get("value", m.get(ax)))
        if value is not None:
            out.append(Mark(str(m.get("label", "")), value, ax, int(m.get("color", 2 if axis is None else 3)),
                            str(m.get("dash", "dashed" if axis != "x" else "dotted")), float(m.get("width", 1.2))))
    return tuple(out)


def _series(d: Any) -> Series | None:
    if not isinstance(d, Mapping):
        return None
    x = d.get("x")
    return Series(str(d.get("name", "")), numbers(d.get("y")), numbers(x) if x is not None else None,
                  int(d.get("color", 0)), float(d.get("width", 1.5)), float(d.get("alpha", 1.0)),
                  str(d.get("dash", "solid")), str(d.get("marker", "") or ""))


def _pair(v: Any) -> tuple[float, float] | None:
    nums = numbers(v)
    return (nums[0], nums[1]) if len(nums) == 2 and None not in nums else None


def chart_from_dict(d: Any) -> Chart | None:
    """A chart from its JSON form (or the watch's line dicts); None when it is not one."""
    if not isinstance(d, Mapping):
        return None
    kind = d.get("kind", "line")
    if kind == "note":
        return Note(str(d.get("text", "")))
    if kind == "table":
        ints = lambda key: tuple(int(i) for i in d.get(key) or () if isinstance(i, int))  # noqa: E731
        return Table(str(d.get("title", "")), tuple(str(c) for c in d.get("columns") or ()),
                     tuple(tuple(r) for r in d.get("rows") or () if isinstance(r, (list, tuple))),
                     ints("numeric"), ints("mono"), bool(d.get("total")), str(d.get("replaces", "")))
    if kind == "hbar":
        labels = tuple(str(x) for x in d.get("labels") or ())
        return HBar(str(d.get("title", "")), labels, numbers(d.get("values")), str(d.get("xlabel", "")),
                    bool(d.get("log")), _marks(d.get("marks")), _series(d.get("dots")), _pair(d.get("xlim")),
                    str(d.get("value_format", "") or ""), str(d.get("missing", "no value")),
                    str(d.get("caption", "")))
    if kind != "line":
        return None
    series = tuple(s for s in (_series(x) for x in d.get("series") or ()) if s is not None)
    watch_style = "limits" in d  # the watch's dicts: y limits under "limits", x marks under "marks"
    marks = (_marks(d.get("limits"), "y") + _marks(d.get("marks"), "x")) if watch_style else _marks(d.get("marks"))
    bands = tuple(Band(str(b.get("label", "")), lo, hi, str(b.get("axis", "x")), int(b.get("color", 2)),
                       float(b.get("alpha", 0.12)))
                  for b in d.get("bands") or () if isinstance(b, Mapping)
                  for lo, hi in [(_num(b.get("low")), _num(b.get("high")))] if lo is not None and hi is not None)
    log_y = d.get("log_y", False)
    return Line(str(d.get("title", "Timeline")), numbers(d.get("x")), series, str(d.get("xlabel", "step")),
                str(d.get("ylabel", "")), bool(d.get("log_x")), log_y if log_y == "auto" else bool(log_y),
                marks, bands, _pair(d.get("xlim")), _pair(d.get("ylim")), str(d.get("caption", "")),
                float(d.get("height", 2.6 if watch_style else 2.8)))


def charts_or_note(chart: Chart | None, result: Any) -> list[Chart]:
    """``[chart]``; or, when a probe that plots had too little to draw, a note saying so (nothing
    for a skipped or errored result, which has its own message)."""
    if chart is not None:
        return [chart]
    if str(getattr(result, "status", "")) in ("skip", "error"):
        return []
    return [Note("No plot: the probe recorded too few finite values to draw one.")]


def finite(x: Any) -> float | None:
    """``x`` as a finite float, or None (bools, strings, NaN, Inf and the rest)."""
    if isinstance(x, bool) or x is None:
        return None
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, (int, float)):
        x = float(x)
        return x if math.isfinite(x) else None
    return None
