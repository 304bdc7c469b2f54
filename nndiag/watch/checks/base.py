"""What every watch check shares: event bookkeeping, status, and the chart-as-data helper."""

from __future__ import annotations

import math
import statistics
from typing import Any, Iterable

from nndiag.watch.timeline import Event, Timeline

_RANK = {"pass": 0, "warn": 1, "fail": 2}


class Check:
    """Base class: subclasses set ``id`` and ``title`` and implement :meth:`judge`."""

    id = "watch.?"
    title = ""
    uses: tuple[str, ...] = ()  # the WatchConfig fields it judges with (the report's threshold table)

    def __init__(self, config) -> None:
        self.cfg = config
        self.events: list[Event] = []
        self._keys: dict[Any, str] = {}  # what was reported already, at which severity

    # ---- the interface the core uses -----------------------------------------------------
    def update(self, tl: Timeline) -> list[Event]:
        """Judge what is new in ``tl``; return the events not reported before."""
        before = len(self.events)
        self.judge(tl)
        return self.events[before:]

    def judge(self, tl: Timeline) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def summary(self, tl: Timeline) -> str:
        """One line for the summary table."""
        worst = self.worst_event()
        return worst.message if worst is not None else self.healthy_summary(tl)

    def healthy_summary(self, tl: Timeline) -> str:
        return "nothing to report"

    def metrics(self, tl: Timeline) -> dict[str, Any]:
        return {}

    def data(self, tl: Timeline) -> dict[str, Any]:
        return {}

    # ---- helpers --------------------------------------------------------------------------
    def emit(self, key: Any, severity: str, step: int, where: str, message: str,
             value: float | None = None, limit: float | None = None, metric: str = "") -> None:
        """Record an event once per ``key``, again only if its severity rises."""
        prev = self._keys.get(key)
        if prev is not None and _RANK[severity] <= _RANK[prev]:
            return
        self._keys[key] = severity
        self.events.append(Event(self.id, severity, step, where, message, value, limit, metric))

    def worst_event(self) -> Event | None:
        """The most severe event (the first of those)."""
        best = None
        for e in self.events:
            if best is None or _RANK[e.severity] > _RANK[best.severity]:
                best = e
        return best

    @property
    def status(self) -> str:
        worst = self.worst_event()
        return "pass" if worst is None or worst.severity == "pass" else worst.severity


def finite(values: Iterable[float]) -> list[float]:
    """The finite values, in order."""
    return [v for v in values if v is not None and math.isfinite(v)]


def median(values: Iterable[float]) -> float:
    """Median of the finite values; NaN when there are none."""
    vals = finite(values)
    return statistics.median(vals) if vals else math.nan


def chart(title: str, x: list[int], series: dict[str, list[float]], *, ylabel: str = "",
          log_y: bool = False, limits: Iterable[tuple[str, float]] = (),
          marks: Iterable[tuple[str, int]] = ()) -> dict[str, Any]:
    """A line chart as plain data (the HTML writer draws ``data["charts"]`` generically; colours
    are palette indices, as in :mod:`nndiag.charts`)."""
    return {"kind": "line", "title": title, "x": list(x), "xlabel": "step", "ylabel": ylabel,
            "log_y": log_y,
            "series": [{"name": k, "y": list(v), "color": i % 5,
                        "dash": "solid" if i < 5 else "dashed"}
                       for i, (k, v) in enumerate(series.items())],
            "limits": [{"label": lab, "y": y} for lab, y in limits],
            "marks": [{"label": lab, "x": s} for lab, s in marks]}


def thin(x: list[int], ys: dict[str, list[float]], most: int = 400) -> tuple[list[int], dict]:
    """At most ``most`` points per series (every k-th), so a long run keeps the report small."""
    k = max(1, math.ceil(len(x) / most))
    return x[::k], {name: v[::k] for name, v in ys.items()}
