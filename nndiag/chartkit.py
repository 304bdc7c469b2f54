"""Ready-made charts (plain data, :mod:`nndiag.charts`) for the shapes probes usually plot: a loss
curve, a learning-rate sweep, one bar per layer or parameter, per-layer fractions.

A probe picks its charts in ``Probe.charts(result)``, calling these with its own numbers; a
third-party probe can use them the same way or build :class:`~nndiag.charts.Line` /
:class:`~nndiag.charts.HBar` itself. Every function reads defensively (keys may be missing or
malformed) and returns None when there is too little to draw. No matplotlib, no torch.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from nndiag.charts import finite, Band, HBar, Line, Mark, Series, charts_or_note  # noqa: F401 - re-exported

MAX_BARS = 80  # per-layer plots show at most this many rows (the table below has them all)


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


def finding_limits(findings: Iterable[Any], metric: str) -> list[float]:
    """The distinct finite limits of the findings about ``metric`` (what the probe compared with)."""
    out = []
    for f in findings or ():
        if getattr(f, "metric", "") == metric:
            lim = finite(getattr(f, "limit", None))
            if lim is not None and lim not in out:
                out.append(lim)
    return sorted(out)


_SUGGESTIONS = {"suggested_lr_steepest": "steepest", "suggested_lr_valley": "valley",
                "suggested_lr_minimum": "min/10"}


def suggestions(metrics: Mapping[str, Any]) -> list[tuple[str, float]]:
    """(short name, lr) for every positive ``suggested_*`` metric, in the metrics' order."""
    out = []
    for k, v in metrics.items():
        x = finite(v)
        lk = str(k).lower()
        if x is None or x <= 0 or not lk.startswith(("suggested", "suggestion")):
            continue
        out.append((_SUGGESTIONS.get(lk, lk.replace("suggested_", "").replace("_", " ")), x))
    return out


def _short(text: Any, limit: int) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 1] + "\u2026"


def lr_sweep(lrs: Any, losses: Any, smoothed: Any, *, suggested: Sequence[tuple[str, float]] = (),
             configured: Any = None, good_range: tuple[Any, Any] = (None, None), diverged: Any = None) -> Line | None:
    """Loss against learning rate (log x): raw and smoothed, the suggested LRs, the good range and
    the configured LR marked. The y range leaves out the diverging tail of the sweep."""
    lrs, losses, smoothed = series(lrs), series(losses), series(smoothed)
    if lrs is None or (losses is None and smoothed is None):
        return None
    n = len(lrs)
    pts_raw = [(x, y) for x, y in zip(lrs, losses or []) if x and x > 0 and y is not None]
    pts_smooth = [(x, y) for x, y in zip(lrs, smoothed or []) if x and x > 0 and y is not None]
    if len(pts_raw) < 2 and len(pts_smooth) < 2:
        return None
    configured, diverged = finite(configured), finite(diverged)
    low, high = finite(good_range[0]), finite(good_range[1])
    ref = [y for _, y in (pts_smooth or pts_raw)]
    first = ref[0]
    lo = min(ref + [y for _, y in pts_raw[: max(2, int(len(pts_raw) * 0.9))]])
    hi = max(ref[: max(2, int(len(ref) * 0.9))])
    if first > 0:
        hi = min(hi, max(first * 1.5, lo + 1e-12))
    pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
    xs = [x for x, _ in (pts_raw or pts_smooth)]
    lines = []
    if pts_raw:
        lines.append(Series("loss", tuple(y for _, y in pts_raw), tuple(x for x, _ in pts_raw), 0, 0.8, 0.45))
    if pts_smooth:
        lines.append(Series("smoothed loss", tuple(y for _, y in pts_smooth), tuple(x for x, _ in pts_smooth), 0, 1.8))
    bands = (Band("good range", low, high),) if low is not None and high is not None and 0 < low < high else ()
    dashes = ("solid", "dashdot", "densely-dotted")
    marks = [Mark(f"{_short(name, 24)} {x:.2g}", x, "x", 2, dashes[i % 3], 1.1) for i, (name, x) in enumerate(suggested)]
    if diverged is not None and diverged > 0:
        marks.append(Mark(f"diverged {diverged:.2g}", diverged, "x", 3, "dotted", 1.0))
    if configured is not None and configured > 0:
        marks.append(Mark(f"configured {configured:.2g}", configured, "x", 1, "dashed", 1.8))
    bits = [f"{n} learning rates"]
    if suggested:
        bits.append("suggested " + ", ".join(f"{_short(k, 24)} {v:.2g}" for k, v in suggested))
    if configured is not None:
        bits.append(f"configured {configured:.2g}")
    return Line("Learning-rate range test", (), tuple(lines), "learning rate (log scale)", "loss", True, False,
                tuple(marks), bands,
                (min(xs + [configured or xs[0]]) / 1.5, max(xs + [configured or xs[-1]]) * 1.5),
                (lo - pad, hi + pad),
                "; ".join(bits) + ". Green band: the good range; the y axis leaves out the diverging tail "
                "of the sweep.", 3.3)


def loss_curve(curve: Any, *, target: Any = None, floor: Any = None, title: str = "Overfitting one batch") -> Line | None:
    """Loss per step with the target (and a loss floor) drawn; log y when it spans more than 30x."""
    curve = series(curve)
    if curve is None:
        return None
    pts = [(i, y) for i, y in enumerate(curve) if y is not None]
    if len(pts) < 2:
        return None
    target, floor = finite(target), finite(floor)
    ys = [y for _, y in pts] + [v for v in (target, floor) if v]
    use_log = all(y > 0 for y in ys) and max(ys) / min(ys) > 30
    marks = []
    if target is not None:
        marks.append(Mark(f"target {target:.3g}", target, "y", 2, "dashed", 1.2))
    if floor:
        marks.append(Mark(f"loss floor {floor:.3g}", floor, "y", 4, "dotted", 1.0))
    cap = f"{len(curve)} steps, loss {pts[0][1]:.3g} \u2192 {pts[-1][1]:.3g}"
    if len(pts) < len(curve):
        cap += f" ({len(curve) - len(pts)} non-finite values left out)"
    if target is not None:
        cap += f"; target {target:.3g}"
    return Line(title, (), (Series("loss", tuple(y for _, y in pts), tuple(float(i) for i, _ in pts)),),
                "step", "loss", False, use_log, tuple(marks), (), None, None, cap + ".", 2.8)


def gradient_bars(rows: Sequence[Mapping[str, Any]], limits_from: Sequence[Mapping[str, Any] | None],
                  measure: str | None = None) -> HBar | None:
    """Per parameter, the judged gradient statistic as bars on a log axis and the gradient norm as
    dots, with the vanishing and exploding limits (looked up in ``limits_from``, first wins)."""
    keys = ([measure] if measure else []) + ["max_abs_grad", "grad_norm", "norm"]
    field = next((k for k in keys if any(finite(r.get(k)) is not None for r in rows)), None)
    if not rows or field is None:
        return None
    names, values = [], []
    for i, r in enumerate(rows):
        v = finite(r.get(field))
        names.append(str(r.get("param") or r.get("layer") or r.get("name") or f"#{i}"))
        values.append(None if r.get("connected") is False else v)
    dots = None
    if field != "grad_norm":
        dots = Series("gradient norm", tuple(finite(r.get("grad_norm")) if r.get("connected") is not False else None
                                             for r in rows), color=1, marker="o")
    marks = []
    for keys_, name, dash, colour in ((("vanishing_limit", "vanishing_max_abs"), "vanishing below", "dashed", 3),
                                      (("exploding_limit", "exploding_max_abs"), "large above", "dotted", 1),
                                      (("exploding_fail_limit", "exploding_fail_max_abs"), "exploding above", "dashed", 1)):
        x = first_number(*limits_from, keys=keys_)
        if x is not None and x > 0:
            marks.append(Mark(f"{name} {x:.2g}", x, "x", colour, dash, 1.3))
    pretty = {"max_abs_grad": "max |gradient|", "grad_norm": "gradient norm"}.get(field, field.replace("_", " "))
    cap = f"{len(names)} parameters" + (f", first {MAX_BARS} shown" if len(names) > MAX_BARS else "")
    cap += f"; bars: {pretty}" + ("; dots: gradient norm" if dots else "")
    cap += "; a red cross marks a parameter with no gradient or an all-zero one."
    return HBar("Gradients per parameter", tuple(names), tuple(values), f"{pretty} (log scale)", True,
                tuple(marks), dots, None, "", "no gradient / zero", cap)


def fraction_bars(rows: Sequence[Mapping[str, Any]], keys: Sequence[str], *, title: str, what: str,
                  warn: Any = None, fail: Any = None, compared: Sequence[float] = ()) -> HBar | None:
    """A 0..1 fraction per layer (dead units, saturated units), with the warn and fail limits and any
    other limit the probe ``compared`` with."""
    field = next((k for k in keys if any(finite(r.get(k)) is not None for r in rows)), None)
    if not rows or field is None:
        return None
    names, values = [], []
    for i, r in enumerate(rows):
        name = str(r.get("layer") or r.get("where") or r.get("name") or f"#{i}")
        kind = r.get("op") or r.get("activation") or r.get("kind")
        if isinstance(kind, str) and kind and kind not in name:
            name = f"{name} ({kind})"
        names.append(name)
        values.append(finite(r.get(field)))
    warn, fail = finite(warn), finite(fail)
    marks = []
    if warn is not None and 0 <= warn <= 1:
        marks.append(Mark(f"warn above {warn:.2g}", warn, "x", 1, "dotted", 1.3))
    if fail is not None and 0 <= fail <= 1:
        marks.append(Mark(f"fail above {fail:.2g}", fail, "x", 3, "dashed", 1.3))
    for lim in compared:
        if 0 <= lim <= 1 and all(abs(lim - m.value) > 1e-12 for m in marks):
            marks.append(Mark(f"limit {lim:.2g}", lim, "x", 4, "dashdot", 1.3))
    cap = f"{len(names)} layers" + (f", first {MAX_BARS} shown" if len(names) > MAX_BARS else "") + "."
    return HBar(title, tuple(names), tuple(values), f"{what} fraction of units", False, tuple(marks), None,
                (0.0, 1.0), "percent", "no value", cap)


def field_of(rows: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> str | None:
    """The first of ``keys`` that some row holds a finite number under."""
    return next((k for k in keys if any(finite(r.get(k)) is not None for r in rows)), None)


# ----------------------------------------------------------------------------- from a result
# Recipes a probe's ``charts(result)`` calls with its own result and applied config.


def settings_of(config: Any) -> dict[str, Any]:
    """A probe config's fields as a dict (limits to draw when the result does not carry them)."""
    import dataclasses

    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    return dict(vars(config)) if hasattr(config, "__dict__") else {}


def _limits(data: Mapping[str, Any]) -> Mapping[str, Any]:
    lim = data.get("limits") if isinstance(data, Mapping) else None
    return lim if isinstance(lim, Mapping) else {}


def lr_sweep_chart(result: Any) -> Line | None:
    """The LR range test of a result holding ``lrs``/``losses``/``smoothed`` and ``suggested_*``,
    ``configured_lr``, ``good_range_low/high``, ``lr_diverged`` metrics."""
    d, m = result.data or {}, result.metrics or {}
    return lr_sweep(d.get("lrs"), d.get("losses"), d.get("smoothed"), suggested=suggestions(m),
                    configured=m.get("configured_lr"), good_range=(m.get("good_range_low"), m.get("good_range_high")),
                    diverged=m.get("lr_diverged"))


def loss_curve_chart(result: Any) -> Line | None:
    """The loss curve of a result holding ``loss_curve`` (or ``losses``) and a ``target``/``loss_floor``."""
    d, m = result.data or {}, result.metrics or {}
    return loss_curve(d.get("loss_curve") or d.get("losses"),
                      target=first_number(m, d, keys=("target", "target_loss", "loss_target")),
                      floor=first_number(m, keys=("loss_floor",)))


def gradient_chart(result: Any, config: Any = None) -> HBar | None:
    """Gradient bars of a result holding ``layers`` rows and optional ``limits`` (``measure``)."""
    d, m = result.data or {}, result.metrics or {}
    lim = _limits(d)
    measure = lim.get("measure") if isinstance(lim.get("measure"), str) else None
    return gradient_bars(layer_rows(d), (lim, m, settings_of(config)), measure)


def fraction_chart(result: Any, config: Any, keys: Sequence[str], *, title: str, what: str) -> HBar | None:
    """Per-layer fraction bars of a result holding ``layers`` rows, with ``warn_fraction`` and
    ``fail_fraction`` from ``data["limits"]`` or the config, and the limits its findings compared with."""
    d = result.data or {}
    rows = layer_rows(d)
    field = field_of(rows, keys)
    src = (_limits(d), settings_of(config))
    return fraction_bars(rows, keys, title=title, what=what, warn=first_number(*src, keys=("warn_fraction",)),
                         fail=first_number(*src, keys=("fail_fraction",)),
                         compared=finding_limits(result.findings, field) if field else ())


def params_table(result: Any):
    """The parameters per layer of a result holding ``layers`` rows (layer, type, trainable, frozen,
    shared_with, output_shape) and ``total``/``trainable``/``frozen`` metrics."""
    from nndiag.charts import Table

    layers = layer_rows(result.data or {})
    if not layers:
        return None
    rows = []
    for r in layers:
        shared, shape = r.get("shared_with"), r.get("output_shape")
        rows.append((r.get("layer", ""), r.get("type", ""), r.get("trainable"), r.get("frozen"),
                     ", ".join(map(str, shared)) if isinstance(shared, (list, tuple)) else shared,
                     "\u00d7".join(map(str, shape)) if isinstance(shape, (list, tuple)) else shape))
    m = result.metrics or {}
    total = "total" in m
    if total:
        n = m.get("total")
        rows.append(("total", "", m.get("trainable"), m.get("frozen"), "",
                     f"{n:,} parameters" if isinstance(n, int) else f"{n} parameters"))
    return Table("Parameters per layer", ("layer", "type", "trainable", "frozen", "shared with", "output shape"),
                 tuple(rows), numeric=(2, 3), mono=(0,) if not total else (0,), total=total, replaces="layers")
