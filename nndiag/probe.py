"""The probe base class, its configuration, and the context a probe runs in.

A probe is a plain class: an ``id``, a one-line ``description``, a ``Config`` dataclass of
thresholds (defaults cite their source in the field's ``metadata["source"]``) and one method,
:meth:`Probe.run`, that looks at the subject through a :class:`ProbeContext` and fills an
:class:`Outcome`. Probes reach the runner through the ``nndiag_register_probes`` hook, built-in
and third-party alike.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping

from nndiag.errors import ProbeSkipped, UsageError
from nndiag.report import Finding, Status


def threshold(default: Any, source: str, help: str = "") -> Any:
    """A config field whose default cites where the number comes from (shown in docs and HTML)."""
    return field(default=default, metadata={"source": source, "help": help})


@dataclass(frozen=True)
class NoConfig:
    """Config of a probe with no settings."""


class Outcome:
    """What a probe fills in while it runs; the runner turns it into a frozen ProbeResult.

    The status is the worst finding's severity (``pass`` with no findings) unless the probe
    skipped. ``summary`` is one sentence for the terminal table.
    """

    def __init__(self) -> None:
        self.findings: list[Finding] = []
        self.metrics: dict[str, Any] = {}
        self.data: dict[str, Any] = {}
        self.summary: str = ""
        self.skip_reason: str | None = None
        self.charts: list[Any] = []

    def finding(
        self,
        severity: Status | str,
        message: str,
        *,
        where: str = "",
        value: float | None = None,
        limit: float | None = None,
        metric: str = "",
    ) -> Finding:
        """Record a finding (severity ``warn`` or ``fail``, or ``pass`` for a noted fact)."""
        f = Finding(Status(severity), message, where, _num(value), _num(limit), metric)
        self.findings.append(f)
        return f

    def fail(self, message: str, **kw: Any) -> Finding:
        """Shorthand for a ``fail`` finding."""
        return self.finding(Status.FAIL, message, **kw)

    def warn(self, message: str, **kw: Any) -> Finding:
        """Shorthand for a ``warn`` finding."""
        return self.finding(Status.WARN, message, **kw)

    def graded(self, message: str, *, value: float, warn_limit: float, fail_limit: float,
               **kw: Any) -> Finding | None:
        """A ``fail`` above ``fail_limit``, else a ``warn`` above ``warn_limit``, else nothing.

        The finding's ``limit`` is the one that was crossed.
        """
        if value > fail_limit:
            return self.fail(message, value=value, limit=fail_limit, **kw)
        if value > warn_limit:
            return self.warn(message, value=value, limit=warn_limit, **kw)
        return None

    def metric(self, name: str, value: Any) -> None:
        """Record a scalar metric (one CSV row)."""
        self.metrics[name] = _num(value)

    def chart(self, chart: Any) -> None:
        """Record a plot as plain data (an :mod:`nndiag.charts` Line, HBar or Note): the HTML
        writer draws it, whatever the probe."""
        self.charts.append(chart)

    def skip(self, reason: str) -> None:
        """End the probe as ``skip`` with the reason (raises, so nothing after it runs)."""
        raise ProbeSkipped(reason)

    @property
    def status(self) -> Status:
        """Skip when skipped, else the worst severity among the findings (pass when none)."""
        if self.skip_reason is not None:
            return Status.SKIP
        return Status.worst([f.severity for f in self.findings] or [Status.PASS])


def _num(value: Any) -> Any:
    if value is None:
        return None
    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return float(value)
    return value


DEFAULT_COST = 500  # a probe that does not say how costly it is runs after the built-ins


class Probe:
    """Base class of every probe: the one place a probe is described.

    Subclasses set ``id``, ``description`` (one line), ``Config`` (thresholds with sources) and
    ``run``; optionally ``hint`` (what a failure usually means: the last line of an assertion
    helper's message), ``cost`` (runs are ordered cheapest first, ties by id: built-ins use 10-100)
    and :meth:`charts` (plots of the finished result, as plain data).
    """

    id: ClassVar[str] = ""
    description: ClassVar[str] = ""
    Config: ClassVar[type] = NoConfig
    hint: ClassVar[str] = ""
    cost: ClassVar[int] = DEFAULT_COST

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    def run(self, ctx: "ProbeContext", out: Outcome) -> None:
        """Look at the subject through ``ctx`` and record findings, metrics and a summary in ``out``."""
        raise NotImplementedError

    def requires(self) -> list[Any]:
        """The measurement passes this probe reads, with the parameters it needs
        (:mod:`nndiag.passes` records); the runner plans them before any probe runs so each is
        computed once. None by default."""
        return []

    def charts(self, result: Any) -> list[Any]:
        """Plots of the finished ``result`` (a ProbeResult), as :mod:`nndiag.charts` data; none by
        default. Called by the runner after :meth:`run`; ``self.config`` holds the applied settings."""
        return []


def build_config(probe_cls: type[Probe], settings: Mapping[str, Any] | None) -> Any:
    """The probe's Config with ``settings`` applied; UsageError naming the valid keys otherwise.

    Values given as strings (from the command line) are converted to the field's type.
    """
    cfg_cls = probe_cls.Config
    settings = dict(settings or {})
    fields = {f.name: f for f in dataclasses.fields(cfg_cls)}
    unknown = sorted(set(settings) - set(fields))
    if unknown:
        valid = ", ".join(sorted(fields)) or "none"
        raise UsageError(
            f"Unknown setting {', '.join(unknown)} for probe {probe_cls.id!r}.",
            hint=f"Valid settings: {valid}.",
        )
    defaults = cfg_cls()
    values = {}
    for key, raw in settings.items():
        values[key] = _coerce(raw, getattr(defaults, key), f"{probe_cls.id}.{key}")
    return dataclasses.replace(defaults, **values)


def _coerce(raw: Any, default: Any, name: str) -> Any:
    if not isinstance(raw, str) or isinstance(default, str) or default is None:
        return raw
    try:
        if isinstance(default, bool):
            if raw.lower() in {"1", "true", "yes", "on"}:
                return True
            if raw.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
        if isinstance(default, (tuple, list)):
            return tuple(type(default[0])(x) if default else x for x in raw.split(","))
    except ValueError:
        raise UsageError(
            f"Setting {name}={raw!r} is not a valid {type(default).__name__}.",
            hint=f"The default is {default!r}.",
        ) from None
    return raw


def config_sources(probe_cls: type[Probe]) -> list[dict[str, Any]]:
    """Each config field with its default, source and help: for docs, HTML and ``nndiag probes``."""
    out = []
    for f in dataclasses.fields(probe_cls.Config):
        default = f.default if f.default is not dataclasses.MISSING else None
        out.append({"name": f.name, "default": default, "source": f.metadata.get("source", ""),
                    "help": f.metadata.get("help", "")})
    return out


_OBSERVED_KEY = "__observed_non_finite__"


@dataclass(frozen=True)
class TrainingRun:
    """A probe's training loop that went non-finite: enough to replay it and locate the producer.

    ``batches`` are the batches the loop cycled over (step k used ``batches[k % len(batches)]``),
    ``step`` the step (from 0) whose loss or gradient was first non-finite, ``stage`` "loss" or
    "gradients", and ``source`` a phrase for messages ("the overfit run on one batch of 32").
    """

    source: str
    batches: tuple[Any, ...]
    step: int
    stage: str
    detail: str


def applied_settings(probe_cls: type[Probe], config: Any) -> tuple[dict[str, Any], ...]:
    """Each config field with the value ``config`` applies, its default, source and meaning
    (what the report's threshold tables show)."""
    out = []
    for row in config_sources(probe_cls):
        out.append({"name": row["name"], "value": getattr(config, row["name"], row["default"]),
                    "default": row["default"], "source": row["source"], "help": row["help"]})
    return tuple(out)


def describe_result(result: Any, probe_cls: type[Probe], config: Any) -> Any:
    """``result`` with what the writers need from the probe class: its description and hint, the
    settings it ran with, and its charts (``Outcome.chart`` ones first, then ``Probe.charts``).

    A probe whose ``charts`` raises loses its plot, never its verdict: a note says why.
    """
    from nndiag.charts import Note

    try:
        extra = tuple(probe_cls(config).charts(result) or ())
    except Exception as exc:  # noqa: BLE001 - a plotting bug costs the plot only
        extra = (Note(f"The plot could not be made ({type(exc).__name__}: {exc})."),)
    try:
        settings = applied_settings(probe_cls, config)
    except Exception:  # noqa: BLE001 - a plugin's odd Config costs its threshold table only
        settings = ()
    return dataclasses.replace(result, description=str(getattr(probe_cls, "description", "") or ""),
                               hint=str(getattr(probe_cls, "hint", "") or ""), settings=settings,
                               charts=tuple(result.charts) + extra)


class ProbeContext:
    """What a probe sees: the workbench (models, batches, user code), the run seed, and the cache
    of shared passes so that two probes needing the same pass compute it once."""

    def __init__(self, bench: Any, shared: dict[Any, Any], probe_id: str, plan: Any = None) -> None:
        from nndiag.passes import PassPlan

        self.bench = bench
        self._shared = shared
        self.probe_id = probe_id
        self.plan = plan if plan is not None else PassPlan()  # the run's merged pass requirements

    @property
    def subject(self):
        """The Subject being checked."""
        return self.bench.subject

    @property
    def seed(self) -> int:
        """The run seed (``--seed``)."""
        return self.bench.seed

    @property
    def device(self):
        """The torch device the probes run on."""
        return self.bench.device

    def observe_non_finite(self, run: TrainingRun) -> None:
        """Record that a training loop of this probe went non-finite (the ``nan`` probe judges it).

        Every training nndiag runs is watched, not only the ``nan`` probe's own pass: a loss that
        turns NaN at step 42 of the overfit run is a ``nan`` finding with its producer located.
        """
        self._shared.setdefault(_OBSERVED_KEY, []).append(run)

    def observed_non_finite(self) -> list["TrainingRun"]:
        """The non-finite training runs other probes recorded so far, in the order they ran."""
        return list(self._shared.get(_OBSERVED_KEY, []))

    def shared(self, key: Any, compute: Callable[[], Any]) -> Any:
        """The value of a shared pass: computed on first use (under the run seed), then reused.

        A pass that raised re-raises the same error for every probe that asks for it.
        """
        if key not in self._shared:
            from nndiag.seeding import fork_seeded

            try:
                with fork_seeded(self.seed):
                    self._shared[key] = ("ok", compute())
            except Exception as exc:  # noqa: BLE001 - replayed for every probe needing the pass
                self._shared[key] = ("error", exc)
        kind, value = self._shared[key]
        if kind == "error":
            raise value
        return value
