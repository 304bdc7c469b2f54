"""Assertion helpers for tests: ``assert_finite(...)``, ``assert_report_ok(report)``, ...

Usable with or without pytest. Each helper takes either a :class:`~nndiag.report.Report` (and checks
its probe's result there) or the arguments of :func:`nndiag.check` (a model file path, or
``model=``/``batch=``/``loss_fn=``/...) and then runs just its own probe. A failure raises
:class:`NndiagAssertionError`, whose message is one summary line, an aligned table of the findings
(probe, where, value, limit), the findings' own sentences and a hint.

Inside a pytest session with the nndiag plugin, checks run by the helpers use the session's
``--nndiag-seed``/``--nndiag-device``, the test's ``@pytest.mark.nndiag(...)`` options and
``--nndiag-fail-on``, and land in the session report. This module does not import torch (the checks
it runs do, when they run).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from nndiag.options import merge_options
from nndiag.report import ProbeResult, Report, Status, SubjectReport

__all__ = [
    "NndiagAssertionError", "assert_report_ok", "assert_overfits", "assert_finite",
    "assert_gradients_flow", "assert_no_dead_neurons", "assert_param_count", "assert_lr_in_range",
    "assert_updates_all_params", "assert_batch_independent", "format_findings", "report_from_dict",
    "run_check",
]

_ERROR_HINT = ("the probe could not run: fix the error above (`nndiag check FILE --traceback` shows the "
               "full traceback)")
_SKIP_HINT = ("the probe could not confirm the property; give it what it needs, or pass allow_skip=True "
              "if that is expected")
_LOAD_HINT = "the model file could not be used; fix the problem named above"

class NndiagAssertionError(AssertionError):
    """Raised by the helpers; ``report`` is the report that was checked (None if none ran)."""

    def __init__(self, message: str, report: Report | None = None) -> None:
        super().__init__(message)
        self.report = report


# --------------------------------------------------------------------------------------------
# The link to a running pytest session (the plugin registers itself; without it, plain defaults).


def _session_link():
    """The active nndiag pytest session, or None outside pytest (or with the plugin disabled)."""
    plugin = sys.modules.get("nndiag.pytest_plugin")
    active = getattr(plugin, "active_session", None)
    return active() if active is not None else None


def _default_fail_on() -> str:
    link = _session_link()
    return link.fail_on if link is not None else "fail"


def run_check(path: Any = None, /, **kwargs: Any) -> Report:
    """``nndiag.check(path, **kwargs)`` with the pytest session's defaults and the test's marker
    options underneath ``kwargs``; the report is recorded for the session report."""
    from nndiag.api import check

    link = _session_link()
    options = merge_options(link.defaults() if link is not None else {}, kwargs)
    report = check(path, **options)
    if link is not None:
        link.record(report)
    return report


def report_from_dict(d: Mapping[str, Any]) -> Report:
    """The inverse of :meth:`Report.to_dict` (pytest-xdist workers send reports as JSON)."""
    return Report.from_dict(d)


# --------------------------------------------------------------------------------------------
# Formatting.


def _fmt(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == int(value) and abs(value) < 1e6:
            return str(int(value))
        if 1e-3 <= abs(value) < 1e4:
            return f"{value:.2f}" if abs(value) < 100 else f"{value:.1f}"
        return f"{value:.2g}"
    return str(value)


@dataclass(frozen=True)
class _Row:
    probe: str
    where: str
    value: Any
    limit: Any
    message: str
    severity: Status
    hint: str = ""  # the probe's own hint (Probe.hint, carried by the result)


def _rows_of(result: ProbeResult) -> list[_Row]:
    """The rows a bad result contributes: its findings at the result's status, or its summary."""
    found = [f for f in result.findings if f.severity is result.status]
    if not found:
        return [_Row(result.probe, "", None, None, result.summary, result.status, result.hint)]
    return [_Row(result.probe, f.where, f.value, f.limit, f.message, f.severity, result.hint) for f in found]


def _table(rows: Sequence[_Row]) -> list[str]:
    header = ("probe", "where", "value", "limit")
    cells = [header] + [(r.probe, r.where or "-", _fmt(r.value), _fmt(r.limit)) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    return ["  ".join(c[i].ljust(widths[i]) for i in range(3)) + "  " + c[3] for c in cells]


def format_findings(subject: str, rows: Sequence[_Row], hint: str) -> str:
    """The failure message: summary line, aligned table, the findings' sentences, hint."""
    levels = sorted({r.severity for r in rows}, key=lambda s: -s.rank)
    level = "/".join(s.value.upper() for s in levels)
    n = len(rows)
    lines = [f"nndiag: {n} finding{'s' if n != 1 else ''} at {level} for subject {subject!r}"]
    lines += _table(rows)
    for r in rows:
        where = f" at {r.where}" if r.where else ""
        lines.append(f"  {r.probe}{where}: {r.message}")
    lines.append(f"hint: {hint}")
    return "\n".join(lines)


def _hint_for(rows: Sequence[_Row]) -> str:
    hints: list[str] = []
    for r in rows:
        h = (_ERROR_HINT if r.severity is Status.ERROR else
             _SKIP_HINT if r.severity is Status.SKIP else r.hint or f"see docs/probes/{r.probe}.md")
        if h not in hints:
            hints.append(h)
    return "; ".join(hints)


def _is_bad(result: ProbeResult, threshold: Status, allow_skip: bool) -> bool:
    if result.status is Status.ERROR:
        return True
    if result.status is Status.SKIP:
        return not allow_skip
    return result.status.rank >= threshold.rank


def _threshold(fail_on: str | None) -> Status:
    value = fail_on or _default_fail_on()
    if value not in ("fail", "warn"):
        raise ValueError(f"fail_on={value!r}: use 'fail' or 'warn'.")
    return Status(value)


def _raise_for(report: Report, bad: list[tuple[SubjectReport, list[ProbeResult]]],
               hint: str | None = None) -> None:
    __tracebackhide__ = True
    parts = []
    for subject, results in bad:
        if subject.load_error:
            parts.append(f"nndiag: subject {subject.subject!r} did not load: {subject.load_error}\n"
                         f"hint: {_LOAD_HINT}")
            continue
        rows = [row for r in results for row in _rows_of(r)]
        parts.append(format_findings(subject.subject, rows, hint or _hint_for(rows)))
    raise NndiagAssertionError("\n".join(parts), report)


# --------------------------------------------------------------------------------------------
# The helpers.


def assert_report_ok(report: Report, fail_on: str | None = None, *, allow_skip: bool = True) -> None:
    """Fail when any probe in ``report`` reached ``fail_on`` ('fail' or 'warn'; default: the
    session's ``--nndiag-fail-on``, else 'fail'), errored, or a subject did not load.

    Skips are allowed by default (a probe that does not apply); ``allow_skip=False`` fails on them.
    """
    __tracebackhide__ = True
    if isinstance(report, SubjectReport):
        report = Report((report,))
    if not isinstance(report, Report):
        raise TypeError(f"assert_report_ok() takes a Report, not {type(report).__name__}.")
    threshold = _threshold(fail_on)
    bad = []
    for subject in report.subjects:
        results = [r for r in subject.results if _is_bad(r, threshold, allow_skip)]
        if subject.load_error or results:
            bad.append((subject, results))
    if not report.subjects:
        raise NndiagAssertionError("nndiag: the report holds no subject; nothing was checked.", report)
    if bad:
        _raise_for(report, bad)


def _probe_assert(probe: str, target: Any, kwargs: dict[str, Any], *, fail_on: str | None,
                  allow_skip: bool, settings: Mapping[str, Any] | None = None) -> Report:
    """Get a report with ``probe``'s result (given, or by running just that probe) and check it."""
    __tracebackhide__ = True
    threshold = _threshold(fail_on)
    if isinstance(target, SubjectReport):
        target = Report((target,))
    if isinstance(target, Report):
        if kwargs:
            raise TypeError(f"Got a Report and check arguments ({', '.join(kwargs)}); pass one or the other.")
        report = target
    else:
        if "probes" in kwargs or "skip" in kwargs:
            raise TypeError(f"This helper runs only the {probe!r} probe; drop probes=/skip=.")
        path = None
        if isinstance(target, (str, os.PathLike)):
            path = target
        elif target is not None:
            kwargs = {**kwargs, "model": target}
        if settings:
            key = probe.replace("-", "_")
            kwargs = {**kwargs, key: {**dict(kwargs.get(key, {}) or {}), **settings}}
        report = run_check(path, probes=[probe], **kwargs)
    bad = []
    for subject in report.subjects:
        if subject.load_error:
            bad.append((subject, []))
            continue
        try:
            result = subject.result(probe)
        except KeyError as exc:
            raise NndiagAssertionError(f"nndiag: {exc.args[0]}\nhint: run it with probes=[{probe!r}] "
                                       "or pass the model itself to this helper.", report) from None
        if _is_bad(result, threshold, allow_skip):
            bad.append((subject, [result]))
    if not report.subjects:
        raise NndiagAssertionError("nndiag: the report holds no subject; nothing was checked.", report)
    if bad:
        _raise_for(report, bad)
    return report


def _make_helper(name: str, probe: str, claim: str):
    def helper(target: Any = None, /, *, fail_on: str | None = None, allow_skip: bool = False,
               **check_kwargs: Any) -> Report:
        __tracebackhide__ = True
        return _probe_assert(probe, target, check_kwargs, fail_on=fail_on, allow_skip=allow_skip)

    helper.__name__ = helper.__qualname__ = name
    helper.__doc__ = (
        f"Assert that {claim} (the ``{probe}`` probe).\n\n"
        f"``target`` is a Report holding a ``{probe}`` result, a model file path, or an ``nn.Module`` "
        "(or factory); other keywords are those of :func:`nndiag.check` (``batch=``, ``loss_fn=``, "
        f"``{probe.replace('-', '_')}={{...}}`` settings, ...). Fails on the probe's ``fail`` (or "
        "``warn`` with ``fail_on='warn'``), on ``error``, and on ``skip`` unless ``allow_skip=True``. "
        "Returns the report."
    )
    return helper


assert_overfits = _make_helper("assert_overfits", "overfit",
                               "the model can drive the loss on one small batch close to zero")
assert_finite = _make_helper("assert_finite", "nan",
                             "no NaN/Inf appears in inputs, parameters, forward pass, loss or gradients")
assert_gradients_flow = _make_helper("assert_gradients_flow", "gradients",
                                     "every trainable parameter gets a usable gradient")
assert_no_dead_neurons = _make_helper("assert_no_dead_neurons", "dead-neurons",
                                      "no ReLU-family layer has too many units that never activate")
assert_lr_in_range = _make_helper("assert_lr_in_range", "lr-range",
                                  "the configured learning rate is inside the range the LR sweep suggests")
assert_updates_all_params = _make_helper("assert_updates_all_params", "updates",
                                         "one optimizer step changes every trainable parameter")
assert_batch_independent = _make_helper("assert_batch_independent", "batch-independence",
                                        "each sample's output depends on its own input only")


def assert_param_count(target: Any = None, /, expected: int | None = None, *,
                       trainable: int | None = None, fail_on: str | None = None,
                       allow_skip: bool = False, **check_kwargs: Any) -> Report:
    """Assert the parameter count (the ``params`` probe): total ``expected`` and/or ``trainable``.

    Without numbers it asserts the probe does not fail (a model with no trainable parameter).
    With a Report, the counts are read from its ``params`` metrics.
    """
    __tracebackhide__ = True
    if isinstance(target, (Report, SubjectReport)):
        report = _probe_assert("params", target, check_kwargs, fail_on=fail_on, allow_skip=allow_skip)
        bad = []
        for subject in report.subjects:
            params = subject.result("params")
            metrics = params.metrics
            rows = [_Row("params", "<model>", metrics.get(key), want, msg, Status.FAIL)
                    for key, want, msg in (("total", expected, "total parameter count"),
                                           ("trainable", trainable, "trainable parameter count"))
                    if want is not None and metrics.get(key) != want]
            rows = [_Row(r.probe, r.where, r.value, r.limit,
                         f"The model has {_fmt(r.value)} {r.message.split()[0]} parameters; the test "
                         f"expects {r.limit}.", r.severity) for r in rows]
            if rows:
                bad.append(format_findings(subject.subject, rows, params.hint or "see docs/probes/params.md"))
        if bad:
            raise NndiagAssertionError("\n".join(bad), report)
        return report
    settings = {k: v for k, v in (("expected_total", expected), ("expected_trainable", trainable))
                if v is not None}
    return _probe_assert("params", target, check_kwargs, fail_on=fail_on, allow_skip=allow_skip,
                         settings=settings)

