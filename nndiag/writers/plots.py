"""Matplotlib figures for the HTML report, as inline SVG text.

Each ``plot_*`` function takes a :class:`~nndiag.report.ProbeResult` and returns a list of
:class:`Plot` (empty when the result holds nothing plottable). They read ``result.data`` and
``result.metrics`` defensively: probes are plugins, keys may be missing or malformed, and a bad
series must cost the plot, never the report. :func:`plots_for` picks the functions by probe id.

Theming: text, axes and grid are drawn in sentinel colours that :func:`figure_svg` turns into CSS
variables (``var(--plot-fg, #888)``, ...) so the inline SVG follows the page's light or dark
palette; the figure and axes backgrounds are transparent. Series use ``var(--c1)`` ... likewise.

Safety: every label goes through :func:`label` (control characters dropped, length capped);
matplotlib escapes ``<``, ``>`` and ``&`` in SVG text; :func:`figure_svg` then drops comments,
metadata and unreferenced ids and refuses an SVG holding a ``<script``, ``<foreignObject`` or an
``on...=`` attribute.

matplotlib is imported lazily, inside :func:`_mpl`, with the Agg backend.
"""

from __future__ import annotations

import io
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

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


def number(x: Any) -> float | None:
    """``x`` as a float (NaN/Inf kept, also from the JSON strings "nan"/"inf"), or None."""
    if isinstance(x, bool) or x is None:
        return None
    if isinstance(x, str):
        try:
            return float(x) if x.strip().lower().lstrip("+-") in ("nan", "inf", "infinity") else None
        except ValueError:
            return None
    if hasattr(x, "item") and callable(x.item) and getattr(x, "ndim", 1) == 0:
        x = x.item()
    if isinstance(x, (int, float)):
        return float(x)
    return None


def series(x: Any) -> list[float | None] | None:
    """A list of numbers (None for a non-finite entry); None unless ``x`` is a non-empty sequence."""
    if isinstance(x, (str, bytes, Mapping)) or not isinstance(x, Sequence) or not x:
        return None
    out = [finite(v) for v in x]
    return out if any(v is not None for v in out) else None


def layer_rows(data: Mapping[str, Any], key: str = "layers") -> list[Mapping[str, Any]]:
    """``data[key]`` when it is a list of dicts (others dropped); else []."""
    rows = data.get(key) if isinstance(data, Mapping) else None
    if not isinstance(rows, Sequence) or isinstance(rows, (str, bytes)):
        return []
    return [r for r in rows if isinstance(r, Mapping)]


def first_number(*sources: Mapping[str, Any] | None, keys: Iterable[str]) -> float | None:
    """The first finite number found under any of ``keys`` in any of ``sources``."""
    keys = list(keys)
    for src in sources:
        if not isinstance(src, Mapping):
            continue
        for k in keys:
            v = finite(src.get(k))
            if v is not None:
                return v
    return None


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


def _salt(result: Any, name: str, key: Any) -> str:
    """The SVG id salt: distinct per figure of a page (``key`` says where the result sits)."""
    return f"nndiag-{key}-{getattr(result, 'probe', '')}-{name}"


# ----------------------------------------------------------------------------- the plots

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


def _log_axis(ax: Any, which: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter, LogLocator

    axis = ax.xaxis if which == "x" else ax.yaxis
    (ax.set_xscale if which == "x" else ax.set_yscale)("log")
    axis.set_major_locator(LogLocator(base=10, numticks=12))
    axis.set_major_formatter(FuncFormatter(pow10_label))


def finding_limits(result: Any, metric: str) -> list[float]:
    """The distinct finite limits of the findings about ``metric`` (what the probe compared with)."""
    out = []
    for f in getattr(result, "findings", ()) or ():
        if getattr(f, "metric", "") == metric:
            lim = finite(getattr(f, "limit", None))
            if lim is not None and lim not in out:
                out.append(lim)
    return sorted(out)


_SUGGESTIONS = {"suggested_lr_steepest": "steepest", "suggested_lr_valley": "valley",
                "suggested_lr_minimum": "min/10"}


def _suggestions(metrics: Mapping[str, Any]) -> list[tuple[str, float]]:
    out = []
    for k, v in metrics.items():
        x = finite(v)
        lk = str(k).lower()
        if x is None or x <= 0 or not lk.startswith(("suggested", "suggestion")):
            continue
        out.append((_SUGGESTIONS.get(lk, lk.replace("suggested_", "").replace("_", " ")), x))
    return out


def plot_lr_range(result: Any, key: Any = 0, defaults: Mapping[str, Any] | None = None) -> list[Plot]:
    """Loss against learning rate (log x): raw and smoothed, the suggested LRs, the good range and
    the configured LR marked."""
    data, metrics = result.data or {}, result.metrics or {}
    lrs = series(data.get("lrs"))
    losses = series(data.get("losses"))
    smoothed = series(data.get("smoothed"))
    if lrs is None or (losses is None and smoothed is None):
        return []
    n = len(lrs)
    pts_raw = [(x, y) for x, y in zip(lrs, losses or []) if x and x > 0 and y is not None]
    pts_smooth = [(x, y) for x, y in zip(lrs, smoothed or []) if x and x > 0 and y is not None]
    if len(pts_raw) < 2 and len(pts_smooth) < 2:
        return []
    suggestions = _suggestions(metrics)
    configured = finite(metrics.get("configured_lr"))
    low, high = finite(metrics.get("good_range_low")), finite(metrics.get("good_range_high"))
    diverged = finite(metrics.get("lr_diverged"))
    ref = [y for _, y in (pts_smooth or pts_raw)]
    first = ref[0]
    lo = min(ref + [y for _, y in pts_raw[: max(2, int(len(pts_raw) * 0.9))]])
    # the sweep ends in a diverging loss: keep the y range on the informative part
    hi = max(ref[: max(2, int(len(ref) * 0.9))])
    if first > 0:
        hi = min(hi, max(first * 1.5, lo + 1e-12))
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    xs = [x for x, _ in (pts_raw or pts_smooth)]

    def draw(ax):
        _log_axis(ax, "x")
        if low is not None and high is not None and 0 < low < high:
            ax.axvspan(low, high, color=SERIES[2], alpha=0.12, lw=0, label="good range")
        if pts_raw:
            ax.plot(*zip(*pts_raw), lw=0.8, alpha=0.45, color=SERIES[0], label="loss")
        if pts_smooth:
            ax.plot(*zip(*pts_smooth), lw=1.8, color=SERIES[0], label="smoothed loss")
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xlim(min(xs + [configured or xs[0]]) / 1.5, max(xs + [configured or xs[-1]]) * 1.5)
        styles = ("-", "-.", (0, (1, 1)))
        for i, (name, x) in enumerate(suggestions):
            ax.axvline(x, color=SERIES[2], lw=1.1, ls=styles[i % 3], label=f"{label(name, 24)} {x:.2g}")
        if diverged is not None and diverged > 0:
            ax.axvline(diverged, color=SERIES[3], lw=1.0, ls=":", label=f"diverged {diverged:.2g}")
        if configured is not None and configured > 0:
            ax.axvline(configured, color=SERIES[1], lw=1.8, ls="--", label=f"configured {configured:.2g}")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("loss")

    svg = figure_svg(draw, height_in=3.3, salt=_salt(result, "lr", key))
    bits = [f"{n} learning rates"]
    if suggestions:
        bits.append("suggested " + ", ".join(f"{label(k, 24)} {v:.2g}" for k, v in suggestions))
    if configured is not None:
        bits.append(f"configured {configured:.2g}")
    return [Plot("Learning-rate range test", svg, "; ".join(bits) + ". Green band: the good range; "
                 "the y axis leaves out the diverging tail of the sweep.")]


def plot_overfit(result: Any, key: Any = 0, defaults: Mapping[str, Any] | None = None) -> list[Plot]:
    """Loss per step on the one fixed batch, with the target (and a loss floor) drawn."""
    data, metrics = result.data or {}, result.metrics or {}
    curve = series(data.get("loss_curve") or data.get("losses"))
    if curve is None:
        return []
    pts = [(i, y) for i, y in enumerate(curve) if y is not None]
    if len(pts) < 2:
        return []
    target = first_number(metrics, data, keys=("target", "target_loss", "loss_target"))
    floor = first_number(metrics, keys=("loss_floor",))
    ys = [y for _, y in pts] + [v for v in (target, floor) if v]
    positive = all(y > 0 for y in ys)
    use_log = positive and max(ys) / min(ys) > 30

    def draw(ax):
        if use_log:
            _log_axis(ax, "y")
        ax.plot(*zip(*pts), lw=1.5, color=SERIES[0], label="loss")
        if target is not None:
            ax.axhline(target, color=SERIES[2], lw=1.2, ls="--", label=f"target {target:.3g}")
        if floor:
            ax.axhline(floor, color=SERIES[4], lw=1.0, ls=":", label=f"loss floor {floor:.3g}")
        ax.set_xlabel("step")
        ax.set_ylabel("loss" + (" (log scale)" if use_log else ""))

    svg = figure_svg(draw, height_in=2.8, salt=_salt(result, "overfit", key))
    cap = f"{len(curve)} steps, loss {pts[0][1]:.3g} \u2192 {pts[-1][1]:.3g}"
    if len(pts) < len(curve):
        cap += f" ({len(curve) - len(pts)} non-finite values left out)"
    if target is not None:
        cap += f"; target {target:.3g}"
    return [Plot("Overfitting one batch", svg, cap + ".")]


def _hbar(rows: list[tuple[str, float | None]], *, log: bool, xlabel: str,
          limits: list[tuple[str, float, str, str]], salt: str, xlim: tuple[float, float] | None = None,
          dots: list[float | None] | None = None, dots_label: str = "", missing: str = "no value",
          value_labels: Callable[[float], str] | None = None) -> str:
    """Horizontal bars, one per named row (top to bottom); ``limits`` = (label, x, linestyle, colour).

    On a log axis a zero or missing value is a red cross at the left edge, labelled ``missing``.
    """
    rows = rows[:MAX_BARS]
    names = [label(n, 40) for n, _ in rows]
    vals = [v for _, v in rows]
    dots = (dots or [])[: len(rows)]
    positive = [v for v in vals + dots if v is not None and v > 0]
    floor = 1e-12
    if log and positive:
        floor = 10 ** math.floor(math.log10(min(positive + [l for _, l, _, _ in limits if l > 0])) - 0.5)

    def draw(ax):
        ys = list(range(len(rows)))
        if log:
            _log_axis(ax, "x")
            ok = [(y, v) for y, v in zip(ys, vals) if v is not None and v > 0]
            if ok:
                ax.barh([y for y, _ in ok], [v - floor for _, v in ok], left=floor, color=SERIES[0], height=0.65)
            bad = [y for y, v in zip(ys, vals) if v is None or v <= 0]
            for y in bad:
                ax.plot([floor * 1.6], [y], marker="x", color=SERIES[3], ms=6, mew=1.5, ls="none")
                ax.text(floor * 2.6, y, missing, va="center", fontsize=7.5, color=SERIES[3])
            ax.set_xlim(left=floor)
        else:
            ax.barh(ys, [v if v is not None else 0 for v in vals], color=SERIES[0], height=0.65)
            if xlim:
                ax.set_xlim(*xlim)
            if value_labels:
                span = (xlim[1] - xlim[0]) if xlim else max([abs(v) for v in vals if v is not None] + [1.0])
                for y, v in zip(ys, vals):
                    if v is not None:
                        ax.text(v + span * 0.01, y, value_labels(v), va="center", fontsize=7.5)
        if dots and dots_label:
            pts = [(v, y) for y, v in zip(ys, dots) if v is not None and (v > 0 or not log)]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3.5, ls="none", color=SERIES[1], label=dots_label)
        for name, x, style, colour in limits:
            ax.axvline(x, color=colour, lw=1.3, ls=style, label=f"{label(name, 30)} {x:.2g}")
        ax.set_yticks(ys, names)
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(xlabel)
        if log and limits:  # show where the limits lie even when every value is far from them
            lo, hi = ax.get_xlim()
            ax.set_xlim(floor, max([hi] + [l * 3 for _, l, _, _ in limits]))

    height = min(16.0, max(1.2, 0.24 * len(rows) + 0.6))
    left = 0.3 + 0.062 * max((len(n) for n in names), default=4)  # ~ width of 8.1 pt labels
    return figure_svg(draw, height_in=height, salt=salt, left_in=left)


def plot_gradients(result: Any, key: Any = 0, defaults: Mapping[str, Any] | None = None) -> list[Plot]:
    """Per parameter, max |gradient| (the number the probe judges) as bars on a log axis and the
    gradient norm as dots, with the vanishing and exploding limits drawn."""
    data, metrics = result.data or {}, result.metrics or {}
    defaults = defaults or {}
    rows = layer_rows(data)
    if not rows:
        return []
    lim_src = data.get("limits") if isinstance(data.get("limits"), Mapping) else {}
    measure = lim_src.get("measure") if isinstance(lim_src.get("measure"), str) else None
    keys = ([measure] if measure else []) + ["max_abs_grad", "grad_norm", "norm"]
    field = next((k for k in keys if any(finite(r.get(k)) is not None for r in rows)), None)
    if field is None:
        return []
    named = []
    for i, r in enumerate(rows):
        v = finite(r.get(field))
        if r.get("connected") is False:
            v = None
        named.append((str(r.get("param") or r.get("layer") or r.get("name") or f"#{i}"), v))
    dots = [finite(r.get("grad_norm")) if r.get("connected") is not False else None for r in rows] \
        if field != "grad_norm" else None
    limits = []
    v = first_number(lim_src, metrics, defaults, keys=("vanishing_limit", "vanishing_max_abs"))
    if v is not None and v > 0:
        limits.append(("vanishing below", v, "--", SERIES[3]))
    e = first_number(lim_src, metrics, defaults, keys=("exploding_limit", "exploding_max_abs"))
    if e is not None and e > 0:
        limits.append(("large above", e, ":", SERIES[1]))
    ef = first_number(lim_src, metrics, defaults, keys=("exploding_fail_limit", "exploding_fail_max_abs"))
    if ef is not None and ef > 0:
        limits.append(("exploding above", ef, "--", SERIES[1]))
    pretty = {"max_abs_grad": "max |gradient|", "grad_norm": "gradient norm"}.get(field, field.replace("_", " "))
    svg = _hbar(named, log=True, xlabel=f"{pretty} (log scale)", limits=limits,
                salt=_salt(result, "grad", key), dots=dots, dots_label="gradient norm",
                missing="no gradient / zero")
    cap = f"{len(named)} parameters" + (f", first {MAX_BARS} shown" if len(named) > MAX_BARS else "")
    cap += f"; bars: {pretty}" + ("; dots: gradient norm" if dots else "")
    cap += "; a red cross marks a parameter with no gradient or an all-zero one."
    return [Plot("Gradients per parameter", svg, cap)]


def _fraction_plot(result: Any, key: Any, keys: Sequence[str], title: str, what: str,
                   defaults: Mapping[str, Any]) -> list[Plot]:
    data = result.data or {}
    rows = layer_rows(data)
    field = next((k for k in keys if any(finite(r.get(k)) is not None for r in rows)), None)
    if not rows or field is None:
        return []
    named = []
    for i, r in enumerate(rows):
        name = str(r.get("layer") or r.get("where") or r.get("name") or f"#{i}")
        kind = r.get("op") or r.get("activation") or r.get("kind")
        if isinstance(kind, str) and kind and kind not in name:
            name = f"{name} ({kind})"
        named.append((name, finite(r.get(field))))
    lim_src = data.get("limits") if isinstance(data.get("limits"), Mapping) else {}
    warn = first_number(lim_src, defaults, keys=("warn_fraction",))
    fail = first_number(lim_src, defaults, keys=("fail_fraction",))
    limits = []
    if warn is not None and 0 <= warn <= 1:
        limits.append(("warn above", warn, ":", SERIES[1]))
    if fail is not None and 0 <= fail <= 1:
        limits.append(("fail above", fail, "--", SERIES[3]))
    for lim in finding_limits(result, field):  # what the probe actually compared with
        if 0 <= lim <= 1 and all(abs(lim - l) > 1e-12 for _, l, _, _ in limits):
            limits.append(("limit", lim, "-.", SERIES[4]))
    svg = _hbar(named, log=False, xlabel=f"{what} fraction of units", limits=limits,
                salt=_salt(result, field, key), xlim=(0, 1), value_labels=lambda v: f"{v:.0%}")
    cap = f"{len(named)} layers" + (f", first {MAX_BARS} shown" if len(named) > MAX_BARS else "")
    return [Plot(title, svg, cap + ".")]


def plot_dead(result: Any, key: Any = 0, defaults: Mapping[str, Any] | None = None) -> list[Plot]:
    """Dead-unit fraction per ReLU-family activation (0..1) with the warn and fail limits drawn."""
    return _fraction_plot(result, key, ("dead_fraction", "fraction"), "Dead units per layer",
                          "dead", defaults or {})


def plot_saturation(result: Any, key: Any = 0, defaults: Mapping[str, Any] | None = None) -> list[Plot]:
    """Saturated-unit fraction per sigmoid/tanh/softmax activation (0..1) with the limits drawn."""
    return _fraction_plot(result, key, ("saturated_fraction", "fraction"),
                          "Saturated units per layer", "saturated", defaults or {})


PLOTTERS: dict[str, Callable[..., list[Plot]]] = {
    "lr-range": plot_lr_range,
    "overfit": plot_overfit,
    "gradients": plot_gradients,
    "dead-neurons": plot_dead,
    "saturation": plot_saturation,
}


def plot_charts(result: Any, key: Any = 0, defaults: Mapping[str, Any] | None = None) -> list[Plot]:
    """The line charts a result declares as plain data in ``data["charts"]``: a list of
    ``{"kind": "line", "title", "x": [...], "series": [{"name", "y": [...]}], "xlabel", "ylabel",
    "log_y", "limits": [{"label", "y"}], "marks": [{"label", "x"}]}`` (the watch's timelines).
    Generic: any probe, built-in or third-party, gets these drawn. Non-finite points are left out
    and counted in the caption; a malformed chart is skipped."""
    charts = (getattr(result, "data", None) or {}).get("charts")
    out: list[Plot] = []
    for i, c in enumerate(charts if isinstance(charts, list) else []):
        if not isinstance(c, Mapping) or c.get("kind", "line") != "line":
            continue
        xs = series(c.get("x"))
        lines = []
        for j, s in enumerate(c.get("series") or []):
            ys = series(s.get("y")) if isinstance(s, Mapping) else None
            if xs is None or ys is None:
                continue
            pts = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
            lines.append((label(s.get("name", f"series {j + 1}"), 32), pts, len(ys) - len(pts)))
        lines = [ln for ln in lines if ln[1]][:len(SERIES) * 2]
        if not lines:
            continue
        limits = [(label(m.get("label", ""), 24), finite(m.get("y"))) for m in c.get("limits") or []
                  if isinstance(m, Mapping)]
        marks = [(label(m.get("label", ""), 24), finite(m.get("x"))) for m in c.get("marks") or []
                 if isinstance(m, Mapping)][:12]
        ys_all = [y for _, pts, _ in lines for _, y in pts]
        log_y = bool(c.get("log_y")) and all(y > 0 for y in ys_all)

        def draw(ax, lines=lines, limits=limits, marks=marks, log_y=log_y, c=c):
            if log_y:
                _log_axis(ax, "y")
            for j, (name, pts, _) in enumerate(lines):
                ax.plot(*zip(*pts), lw=1.3, color=SERIES[j % len(SERIES)], label=name,
                        ls="-" if j < len(SERIES) else "--", marker="." if len(pts) < 30 else None)
            for name, y in limits:
                if y is not None and (not log_y or y > 0):
                    ax.axhline(y, color=FG, lw=0.9, ls="--", label=name or None)
            for name, x in marks:
                if x is not None:
                    ax.axvline(x, color=SERIES[3], lw=0.9, ls=":")
            ax.set_xlabel(label(c.get("xlabel", "step"), 32))
            ax.set_ylabel(label(c.get("ylabel", ""), 32) + (" (log scale)" if log_y else ""))

        svg = figure_svg(draw, height_in=2.6, salt=_salt(result, f"chart{i}", key))
        dropped = sum(d for _, _, d in lines)
        cap = f"{len(lines)} series over {len(xs or [])} points"
        if dropped:
            cap += f"; {dropped} non-finite or missing value(s) left out"
        if marks:
            cap += "; dotted lines: " + ", ".join(f"{n} ({x:g})" for n, x in marks if x is not None)
        out.append(Plot(label(c.get("title", "Timeline"), 80), svg, cap + "."))
    return out


def plots_for(result: Any, key: Any = 0, defaults: Mapping[str, Any] | None = None) -> list[Plot]:
    """The plots for one probe result. ``key`` must differ between the results of one page (it
    keeps the SVG ids apart); ``defaults`` are the probe's default settings (limits to draw when
    the result does not carry them). May raise: the caller turns that into a note."""
    fn = PLOTTERS.get(getattr(result, "probe", ""))
    return (fn(result, key, defaults or {}) if fn else []) + plot_charts(result, key, defaults)
