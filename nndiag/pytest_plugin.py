"""nndiag's pytest plugin (the ``pytest11`` entry point ``nndiag``).

Gives tests the ``nndiag`` fixture (``nndiag.check(...)`` runs probes and returns the report), the
``@pytest.mark.nndiag(...)`` marker for per-test probe options, the ``--nndiag-*`` options, a
session report (``--nndiag-report PATH``, also under pytest-xdist) and an "nndiag summary" section.

Only pytest and the standard library are imported here at top level: a suite that never uses
nndiag must not pay for torch (hypothesis' ``_hypothesis_pytestplugin.py`` does the same). nndiag's
core is imported inside the fixture and the hooks that need it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from nndiag.options import PYTEST_OPTIONS, merge_options, option_help, option_type

FAIL_ON_CHOICES = ("fail", "warn")
_WORKER_KEY = "nndiag_records"  # key in xdist's workeroutput


@dataclasses.dataclass
class _Record:
    nodeid: str
    report: Any  # nndiag.report.Report


@dataclasses.dataclass
class SessionState:
    """What the plugin keeps for one pytest session (in ``config.stash``)."""

    config: pytest.Config
    fail_on: str
    run_defaults: dict[str, Any]  # the session's --nndiag-<option> values (seed, device, threads)
    report_paths: list[tuple[str | None, Path]]  # (format or None: by suffix, path)
    writers: Any = None  # the PluginHost that resolves report writers (built only with report paths)
    records: list[_Record] = dataclasses.field(default_factory=list)
    current_item: pytest.Item | None = None
    write_notes: list[str] = dataclasses.field(default_factory=list)
    outcomes: dict[str, str] = dataclasses.field(default_factory=dict)  # nodeid -> pytest's outcome

    @property
    def is_worker(self) -> bool:
        """True in a pytest-xdist worker (the controller writes the report)."""
        return hasattr(self.config, "workerinput")

    def defaults(self, item: pytest.Item | None = None) -> dict[str, Any]:
        """Options under every check: the session's seed/device/threads, then the test's markers."""
        item = item if item is not None else self.current_item
        layers: list[dict[str, Any]] = [dict(self.run_defaults)]
        if item is not None:
            for mark in reversed(list(item.iter_markers("nndiag"))):  # closest marker wins
                if mark.args:
                    raise pytest.UsageError(
                        f"@pytest.mark.nndiag takes keyword options only, got {mark.args!r} on {item.nodeid}.")
                layers.append(dict(mark.kwargs))
        return merge_options(*layers)

    def record(self, report: Any, nodeid: str | None = None) -> None:
        """Keep ``report`` for the session report and summary."""
        if nodeid is None:
            nodeid = self.current_item.nodeid if self.current_item is not None else ""
        self.records.append(_Record(nodeid, report))


_STATE = pytest.StashKey[SessionState]()
_ACTIVE: list[SessionState] = []  # stack: pytester runs sessions inside sessions


def active_session() -> SessionState | None:
    """The innermost configured session (used by :mod:`nndiag.testing` helpers)."""
    return _ACTIVE[-1] if _ACTIVE else None


# ------------------------------------------------------------------------------------------------
# Options, configuration.


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("nndiag", "nndiag: neural-network training checks")
    group.addoption("--nndiag-report", action="append", dest="nndiag_report", default=[],
                    metavar="PATH",
                    help="Write every nndiag check of the session to PATH (.html, .csv or .json); repeatable.")
    group.addoption("--nndiag-fail-on", dest="nndiag_fail_on", default=None, choices=FAIL_ON_CHOICES,
                    help="Lowest probe status that fails the nndiag assertion helpers (default: fail).")
    for name in PYTEST_OPTIONS:  # derived from nndiag.options.RunOptions
        parse, default, metavar = _session_option(name)
        group.addoption(f"--nndiag-{name}", dest=f"nndiag_{name}", default=None, metavar=metavar,
                        help=f"{option_help(name)} For every nndiag check of the session "
                        f"(default: {default or 'unset'}).")
    parser.addini("nndiag_report", type="paths", default=[],
                  help="nndiag session report paths (.html, .csv, .json), relative to the ini file.")
    parser.addini("nndiag_fail_on", default="fail", help="Default of --nndiag-fail-on (fail or warn).")
    for name in PYTEST_OPTIONS:
        parser.addini(f"nndiag_{name}", default=_session_option(name)[1], help=f"Default of --nndiag-{name}.")


# Session defaults and metavars of the run options the plugin offers (others: unset, VALUE).
_SESSION_DEFAULTS: dict[str, tuple[str, str]] = {"seed": ("0", "N"), "device": ("cpu", "DEVICE"),
                                                 "threads": ("", "N")}


def _session_option(name: str) -> tuple[Any, str, str]:
    """(parse, ini default, metavar) of run option ``name``."""
    default, metavar = _SESSION_DEFAULTS.get(name, ("", "VALUE"))
    return option_type(name), default, metavar


def xdist_threads(workerinput: Any, cores: int | None = None) -> int:
    """Torch threads per pytest-xdist worker when the user set none: the cores shared out among the
    workers (at least 1), so ``-n N`` does not run N x cores threads on the machine."""
    workers = int((workerinput or {}).get("workercount") or os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


def _setting(config: pytest.Config, name: str) -> Any:
    value = config.getoption(name)
    return value if value is not None else config.getini(name)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "nndiag(**options): options for the nndiag fixture's checks in this test, e.g. "
        "probes=['gradients'], seed=1, overfit={'steps': 100}.")
    fail_on = str(_setting(config, "nndiag_fail_on")).strip()
    if fail_on not in FAIL_ON_CHOICES:
        raise pytest.UsageError(f"nndiag_fail_on = {fail_on!r}: use one of {', '.join(FAIL_ON_CHOICES)}.")
    run_defaults = {}
    for name in PYTEST_OPTIONS:
        parse, _, _ = _session_option(name)
        raw = _setting(config, f"nndiag_{name}")
        if raw is None or str(raw).strip() == "":
            continue
        try:
            run_defaults[name] = parse(str(raw).strip())
        except (TypeError, ValueError):
            raise pytest.UsageError(f"nndiag_{name} = {raw!r} is not a valid {parse.__name__}.") from None
    if "threads" not in run_defaults and hasattr(config, "workerinput"):
        run_defaults["threads"] = xdist_threads(config.workerinput)
    invocation_dir = config.invocation_params.dir
    paths, host = _report_targets(config)
    state = SessionState(config, fail_on, run_defaults, paths, writers=host)
    config.stash[_STATE] = state
    _ACTIVE.append(state)


def _report_targets(config: pytest.Config) -> tuple[list[tuple[str | None, Path]], Any]:
    """The session report targets, ``PATH`` or ``FORMAT=PATH``, each checked against the registered
    writers (built-in and plugins'); the writers' host, or None when no report is asked for."""
    from nndiag.writers import parse_target

    targets: list[tuple[str | None, Path]] = []
    for item in config.getoption("nndiag_report"):
        fmt, path = parse_target(str(item))
        targets.append((fmt, config.invocation_params.dir / path))
    for p in config.getini("nndiag_report"):  # ini paths come resolved: FORMAT= is in the name
        fmt, name = parse_target(Path(p).name)
        targets.append((fmt, Path(p).parent / name))
    if not targets:
        return [], None
    from nndiag.errors import NndiagError
    from nndiag.plugins import PluginHost

    try:
        host = PluginHost(builtin_probes=False)  # writers only: no torch for a report-only session
        for fmt, path in targets:
            host.writer(str(path), fmt)
    except NndiagError as exc:
        raise pytest.UsageError(f"--nndiag-report {path}: {exc}") from None
    return targets, host


def pytest_unconfigure(config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is not None and state in _ACTIVE:
        _ACTIVE.remove(state)


def pytest_runtest_logreport(report: Any) -> None:
    """Keep pytest's own outcome of each test (xfail, a failed helper assertion) for the summary."""
    state = _ACTIVE[-1] if _ACTIVE else None
    if state is None or state.is_worker:
        return
    outcome = test_outcome(report)
    if outcome is not None:
        if outcome != "passed" or report.nodeid not in state.outcomes:
            state.outcomes[report.nodeid] = outcome


def test_outcome(report: Any) -> str | None:
    """pytest's word for a test phase's report: passed, failed, error, skipped, xfailed, xpassed
    (None for a passing setup or teardown, which says nothing about the test)."""
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.when != "call":
        if report.failed:
            return "error"
        return "skipped" if report.skipped else None
    return report.outcome


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """Remember the running test, so helpers outside the fixture know its markers and id."""
    state = item.config.stash.get(_STATE, None)
    if state is not None:
        state.current_item = item
    try:
        yield
    finally:
        if state is not None:
            state.current_item = None


# ------------------------------------------------------------------------------------------------
# The fixture.


class NndiagFixture:
    """The ``nndiag`` fixture: ``nndiag.check(...)`` and the reports of this test."""

    def __init__(self, state: SessionState, item: pytest.Item) -> None:
        self._state = state
        self._item = item
        self.reports: list[Any] = []

    @property
    def fail_on(self) -> str:
        """The session's ``--nndiag-fail-on`` level."""
        return self._state.fail_on

    def options(self) -> dict[str, Any]:
        """The options every check of this test starts from (session defaults + markers)."""
        return self._state.defaults(self._item)

    def check(self, path: Any = None, /, **kwargs: Any):
        """Run probes like :func:`nndiag.check` and return the Report.

        ``path`` is a model file; or pass ``model=`` (module or factory), ``batch=``/``batches=``,
        ``loss_fn=``, ``optimizer=`` (factory), ``training_step=``/``train_step=``. Options:
        ``probes=``, ``skip=``, ``seed=``, ``device=``, ``settings=`` or per-probe keywords
        (``overfit={"steps": 100}``). Unset options come from ``@pytest.mark.nndiag(...)``, then
        from ``--nndiag-seed``/``--nndiag-device``. The report joins the session report.
        """
        from nndiag.api import check

        options = merge_options(self.options(), kwargs)
        report = check(path, **options)
        self.reports.append(report)
        self._state.record(report, self._item.nodeid)
        return report


@pytest.fixture
def nndiag(request: pytest.FixtureRequest) -> NndiagFixture:
    """Run nndiag probes in a test: ``report = nndiag.check("model.py", probes=["gradients"])``."""
    state = request.config.stash.get(_STATE, None)
    if state is None:  # pragma: no cover - only if pytest_configure did not run
        raise pytest.UsageError("the nndiag plugin was not configured for this session.")
    return NndiagFixture(state, request.node)


# ------------------------------------------------------------------------------------------------
# The session report: xdist transport, files, terminal summary.


def _records_to_json(records: list[_Record]) -> str:
    return json.dumps([{"nodeid": r.nodeid, "report": r.report.to_dict()} for r in records], default=str)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: take the records a worker sent in its workeroutput."""
    state = node.config.stash.get(_STATE, None)
    payload = getattr(node, "workeroutput", {}).get(_WORKER_KEY)
    if state is None or not payload:
        return
    from nndiag.testing import report_from_dict

    for item in json.loads(payload):
        state.records.append(_Record(item["nodeid"], report_from_dict(item["report"])))


def session_report(state: SessionState):
    """Every check of the session as one Report; each subject is named with its test's id."""
    from nndiag.report import Report

    subjects = []
    for rec in sorted(state.records, key=lambda r: r.nodeid):  # stable: a test's checks stay in order
        for s in rec.report.subjects:
            name = f"{s.subject} ({rec.nodeid})" if rec.nodeid else s.subject
            subjects.append(dataclasses.replace(s, subject=name))
    # the run metadata of the session's first check (versions, device, threads, seed, host), the
    # pytest command line, and pytest's outcome of each test
    meta = next((dict(rec.report.metadata) for rec in state.records if rec.report.metadata), {})
    if meta:
        meta["command"] = ["pytest", *state.config.invocation_params.args]
        meta["files"] = [f for rec in state.records for f in rec.report.metadata.get("files", ())]
    if state.outcomes:
        meta["tests"] = dict(sorted(state.outcomes.items()))
    return Report(tuple(subjects), meta)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state = session.config.stash.get(_STATE, None)
    if state is None:
        return
    if state.is_worker:
        if state.records:
            session.config.workeroutput[_WORKER_KEY] = _records_to_json(state.records)
        return
    if not state.report_paths:
        return
    from nndiag.writers import write_report

    report = session_report(state)
    for fmt, path in state.report_paths:
        try:
            write_report(report, path, format=fmt, host=state.writers)
        except ImportError as exc:
            state.write_notes.append(f"nndiag: could not write {path}: its writer is not available ({exc}).")
        except OSError as exc:
            state.write_notes.append(f"nndiag: could not write {path}: {exc}.")
        else:
            state.write_notes.append(f"nndiag report: {path}")


def _short(subject: str) -> str:
    """A model file's name without its folders (the test id already says where we are)."""
    return Path(subject).name if "/" in subject or "\\" in subject else subject


def _what(result: Any) -> str:
    """One line on a bad result: its first finding at the result's status, else its summary."""
    for f in result.findings:
        if f.severity is result.status:
            text = f"{f.where}: {f.message}" if f.where else f.message
            return text.splitlines()[0] if text else ""
    return result.summary.splitlines()[0] if result.summary else ""


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    state = config.stash.get(_STATE, None)
    if state is None or state.is_worker or not (state.records or state.write_notes):
        return
    tr = terminalreporter
    tr.write_sep("=", "nndiag summary")
    n_tests = len({r.nodeid for r in state.records})
    n_checks = len(state.records)
    tr.write_line(f"nndiag: {n_checks} check{'s' * (n_checks != 1)} in {n_tests} "
                  f"test{'s' * (n_tests != 1)}: {session_report(state).tally() or 'no probe results'}")
    width = shutil.get_terminal_size().columns
    tw = getattr(tr, "_tw", None)
    width = getattr(tw, "fullwidth", width)
    full = config.get_verbosity() >= 2
    for rec in sorted(state.records, key=lambda r: r.nodeid):
        outcome = state.outcomes.get(rec.nodeid, "")
        for s in rec.report.subjects:
            name = _short(s.subject)
            bad = [("ERROR", f"{name} did not load", s.load_error.splitlines()[0])] if s.load_error else [
                (r.status.value.upper(), f"{r.probe} on {name}", _what(r)) for r in s.results
                if r.status.value in ("warn", "fail", "error")]
            if outcome in ("xfailed", "xpassed"):  # pytest's verdict on the test comes first
                bad = [(outcome.upper(), label, what) for _, label, what in bad] or [
                    (outcome.upper(), f"checks on {name}", s.verdict_line())]
            elif outcome == "passed" and bad:  # the test expected these (pytest.raises, a check)
                bad = [(f"{status} (test passed)", label, what) for status, label, what in bad]
            elif outcome in ("failed", "error") and not bad:  # e.g. assert_param_count failed
                bad = [(outcome.upper(), f"the test {outcome}, its checks did not",
                        s.verdict_line() if not s.load_error else s.load_error)]
            for status, label, what in bad:
                line = f"{status} {rec.nodeid or '<no test>'} - {label}: {what}"
                if not full and len(line) > width:
                    line = line[: max(width - 3, 20)] + "..."
                tr.write_line(line)
    for note in state.write_notes:
        tr.write_line(note)
