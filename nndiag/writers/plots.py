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


def figure_svg(draw: Callable[[Any], None], *, height_in: float, salt: str, width_in: float = WIDTH_IN) -> str:
    """Make a figure, let ``draw(fig)`` fill it, and return the cleaned SVG text."""
    matplotlib, Figure, FigureCanvasSVG = _mpl()
    rc = _rc(salt)
    rc["axes.prop_cycle"] = matplotlib.cycler(color=list(SERIES))
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(width_in, height_in), layout="constrained")
        FigureCanvasSVG(fig)
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    return clean_svg(buf.getvalue())


def _salt(result: Any, name: str, subject_index: int) -> str:
    return f"nndiag-{subject_index}-{getattr(result, 'probe', '')}-{name}"


# ----------------------------------------------------------------------------- the plots


def _suggestions(metrics: Mapping[str, Any]) -> list[tuple[str, float]]:
    out = []
    for k, v in metrics.items():
        x = finite(v)
        if x is None or x <= 0:
            continue
        lk = str(k).lower()
        if lk.startswith("suggested") or lk.startswith("suggestion") or lk in ("lr_min_loss", "lr_steepest",
                                                                              "min_loss_lr", "steepest_lr"):
            out.append((str(k), x))
    return out


def plot_lr_range(result: Any, subject_index: int = 0) -> list[Plot]:
    """Loss against learning rate (log x): raw and smoothed, suggested and configured LRs marked."""
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
    ref = [y for _, y in (pts_smooth or pts_raw)]
    lo, first = min(ref), ref[0]
    # the sweep ends in a diverging loss: keep the y range on the informative part
    hi = max(y for y in ref[: max(2, int(len(ref) * 0.9))])
    hi = min(hi, max(first * 1.5, lo + 1e-12) if first > 0 else hi)
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0

    def draw(fig):
        ax = fig.add_subplot()
        if pts_raw:
            ax.plot(*zip(*pts_raw), lw=0.8, alpha=0.45, color=SERIES[0], label="loss")
        if pts_smooth:
            ax.plot(*zip(*pts_smooth), lw=1.8, color=SERIES[0], label="smoothed loss")
        ax.set_xscale("log")
        ax.set_ylim(lo - pad, hi + pad)
        for i, (name, x) in enumerate(suggestions):
            ax.axvline(x, color=SERIES[2 + (i % 2)], lw=1.2, ls="-", label=f"{label(name, 30)} = {x:.2g}")
        if configured is not None and configured > 0:
            ax.axvline(configured, color=SERIES[1], lw=1.6, ls="--", label=f"configured lr = {configured:.2g}")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("loss")
        ax.legend(loc="best", fontsize=8)

    svg = figure_svg(draw, height_in=3.2, salt=_salt(result, "lr", subject_index))
    bits = [f"{n} learning rates"]
    if suggestions:
        bits.append("suggested " + ", ".join(f"{label(k, 30)} {v:.2g}" for k, v in suggestions))
    if configured is not None:
        bits.append(f"configured {configured:.2g}")
    return [Plot("Learning-rate range test", svg, "; ".join(bits) + ". The y range leaves out the "
                 "diverging tail of the sweep.")]


def plot_overfit(result: Any, subject_index: int = 0) -> list[Plot]:
    """Loss per step on the one fixed batch, with the target loss drawn."""
    data, metrics = result.data or {}, result.metrics or {}
    curve = series(data.get("loss_curve") or data.get("losses"))
    if curve is None:
        return []
    pts = [(i, y) for i, y in enumerate(curve) if y is not None]
    if len(pts) < 2:
        return []
    target = first_number(metrics, data, keys=("target", "target_loss", "loss_target"))
    positive = all(y > 0 for _, y in pts) and (target is None or target > 0)
    spread = max(y for _, y in pts) / max(min(y for _, y in pts), 1e-300) if positive else 0

    def draw(fig):
        ax = fig.add_subplot()
        ax.plot(*zip(*pts), lw=1.5, color=SERIES[0], label="loss")
        if target is not None:
            ax.axhline(target, color=SERIES[2], lw=1.2, ls="--", label=f"target {target:.3g}")
        if positive and spread > 30:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("loss" + (" (log scale)" if positive and spread > 30 else ""))
        ax.legend(loc="best", fontsize=8)

    svg = figure_svg(draw, height_in=2.8, salt=_salt(result, "overfit", subject_index))
    cap = f"{len(curve)} steps, loss {pts[0][1]:.3g} \u2192 {pts[-1][1]:.3g}"
    if target is not None:
        cap += f"; target {target:.3g}"
    return [Plot("Overfitting one batch", svg, cap + ".")]


def _hbar(rows: list[tuple[str, float | None]], *, log: bool, xlabel: str, limits: list[tuple[str, float, str]],
          salt: str, xlim: tuple[float, float] | None = None) -> str:
    """Horizontal bars, one per named row (top to bottom in the given order); None = no value."""
    rows = rows[:MAX_BARS]
    names = [label(n, 40) for n, _ in rows]
    vals = [v for _, v in rows]
    positive = [v for v in vals if v is not None and v > 0]
    floor = None
    if log:
        floor = min(positive + [l for _, l, _ in limits if l > 0]) / 10 if positive else 1e-12

    def draw(fig):
        ax = fig.add_subplot()
        ys = list(range(len(rows)))
        if log:
            bars = [(v if v is not None and v > 0 else floor) for v in vals]
            ax.set_xscale("log")
            ax.barh(ys, [b for b in bars], left=0, color=[SERIES[0] if (v is not None and v > 0) else SERIES[3]
                                                         for v in vals], height=0.7)
            ax.set_xlim(left=floor)
        else:
            ax.barh(ys, [v if v is not None else 0 for v in vals], color=SERIES[0], height=0.7)
            if xlim:
                ax.set_xlim(*xlim)
        for j, v in enumerate(vals):
            if v is None:
                ax.text(floor if log else 0, j, " no value", va="center", fontsize=7, color=SERIES[3])
        for i, (name, x, style) in enumerate(limits):
            ax.axvline(x, color=SERIES[3 if i == 0 else 1], lw=1.3, ls=style, label=f"{label(name, 30)} {x:.2g}")
        ax.set_yticks(ys, names)
        ax.invert_yaxis()
        ax.grid(axis="y", visible=False)
        ax.set_xlabel(xlabel)
        if limits:
            ax.legend(loc="lower right", fontsize=8, framealpha=0.0)

    height = min(14.0, max(1.6, 0.24 * len(rows) + 1.0))
    return figure_svg(draw, height_in=height, salt=salt)


_GRAD_KEYS = ("grad_norm", "norm", "l2_norm")


def plot_gradients(result: Any, subject_index: int = 0) -> list[Plot]:
    """Per-parameter gradient norms on a log axis with the vanishing and exploding limits drawn."""
    data, metrics = result.data or {}, result.metrics or {}
    rows = layer_rows(data)
    if not rows:
        return []
    limits_src = data.get("limits") if isinstance(data.get("limits"), Mapping) else {}
    measure = limits_src.get("measure") or limits_src.get("metric") if limits_src else None
    keys = ([measure] if isinstance(measure, str) else []) + list(_GRAD_KEYS)
    key = next((k for k in keys if any(finite(r.get(k)) is not None for r in rows)), None)
    if key is None:
        return []
    named = [(str(r.get("param") or r.get("layer") or r.get("name") or f"#{i}"), finite(r.get(key)))
             for i, r in enumerate(rows)]
    limits = []
    v = first_number(limits_src, metrics, keys=("vanishing_limit", "vanishing", "min_grad_norm"))
    if v is not None and v > 0:
        limits.append(("vanishing below", v, "--"))
    e = first_number(limits_src, metrics, keys=("exploding_limit", "exploding", "max_grad_norm"))
    if e is not None and e > 0:
        limits.append(("exploding above", e, ":"))
    svg = _hbar(named, log=True, xlabel=f"{key.replace('_', ' ')} (log scale)", limits=limits,
                salt=_salt(result, "grad", subject_index))
    cap = f"{len(named)} parameters" + (f", first {MAX_BARS} shown" if len(named) > MAX_BARS else "")
    cap += "; red bars: no gradient or exactly zero (drawn at the left edge)."
    return [Plot("Gradient norm per parameter", svg, cap)]


def _fraction_plot(result: Any, subject_index: int, keys: Sequence[str], title: str, what: str,
                   limit_keys: Sequence[str]) -> list[Plot]:
    data, metrics = result.data or {}, result.metrics or {}
    rows = layer_rows(data)
    key = next((k for k in keys if any(finite(r.get(k)) is not None for r in rows)), None)
    if not rows or key is None:
        return []
    named = []
    for i, r in enumerate(rows):
        name = str(r.get("layer") or r.get("where") or r.get("name") or f"#{i}")
        kind = r.get("activation") or r.get("kind")
        if isinstance(kind, str) and kind:
            name = f"{name} ({kind})"
        named.append((name, finite(r.get(key))))
    limits_src = data.get("limits") if isinstance(data.get("limits"), Mapping) else {}
    lim = first_number(limits_src, metrics, keys=limit_keys)
    limits = [("limit", lim, "--")] if lim is not None and 0 <= lim <= 1 else []
    svg = _hbar(named, log=False, xlabel=f"{what} fraction of units", limits=limits,
                salt=_salt(result, key, subject_index), xlim=(0, 1))
    cap = f"{len(named)} layers" + (f", first {MAX_BARS} shown" if len(named) > MAX_BARS else "")
    return [Plot(title, svg, cap + ".")]


def plot_dead(result: Any, subject_index: int = 0) -> list[Plot]:
    """Dead-unit fraction per activation layer (0..1) with the limit drawn."""
    return _fraction_plot(result, subject_index, ("dead_fraction", "fraction"), "Dead units per layer",
                          "dead", ("dead_fraction_limit", "dead_limit", "max_dead_fraction", "fail_fraction",
                                   "limit"))


def plot_saturation(result: Any, subject_index: int = 0) -> list[Plot]:
    """Saturated-unit fraction per sigmoid/tanh/softmax layer (0..1) with the limit drawn."""
    return _fraction_plot(result, subject_index, ("saturated_fraction", "fraction"), "Saturated units per layer",
                          "saturated", ("saturated_fraction_limit", "saturation_limit", "max_saturated_fraction",
                                        "fail_fraction", "limit"))


PLOTTERS: dict[str, Callable[[Any, int], list[Plot]]] = {
    "lr-range": plot_lr_range,
    "overfit": plot_overfit,
    "gradients": plot_gradients,
    "dead-neurons": plot_dead,
    "saturation": plot_saturation,
}


def plots_for(result: Any, subject_index: int = 0) -> list[Plot]:
    """The plots for one probe result (may raise: the caller turns that into a note)."""
    fn = PLOTTERS.get(getattr(result, "probe", ""))
    return fn(result, subject_index) if fn else []
