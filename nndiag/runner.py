"""Running probes on subjects: the one core function behind the CLI, the pytest plugin and the API.

For each subject: resolve which probes run and with which settings (command line over
``nndiag_config`` over defaults), then run each probe with every generator seeded to the run seed,
on fresh models, sharing passes through one cache; turn user-code failures into ``error`` results
with their message; and restore the user's random generators afterwards.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable

from nndiag.errors import ModelFileError, NndiagError, ProbeSkipped, SubjectError, UsageError
from nndiag.options import RunOptions, probe_settings, validate_file_config
from nndiag.passes import plan_passes
from nndiag.isolation import ProcessExit, exits_raise, note_stage, preserved_process_state
from nndiag.limits import (
    DEFAULT_TIME_LIMIT,
    memory_refusal,
    validate_probe_config,
    validate_seed,
    validate_time_limit,
)
from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport
from nndiag.run_metadata import now_utc, with_run_metadata
from nndiag.source_lines import locate_findings

ProgressCallback = Callable[[str, str, int, int], None]  # (subject, probe id, index, total)

__all__ = ["RunOptions", "check_paths", "check_subject", "finish_run", "prepare_device", "resolve_device",
           "run_probe"]


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is available, else ``cpu``; UsageError for others."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device} was asked for, but torch sees no CUDA GPU here.",
                         hint="Use --device cpu or --device auto.")
    if device not in ("cpu",) and not device.startswith(("cuda", "mps")):
        raise UsageError(f"Unknown device {device!r}.", hint="Use cpu, cuda or auto.")
    if device.startswith("cuda:"):
        index = device.split(":", 1)[1]
        count = torch.cuda.device_count()
        if not index.isdigit() or int(index) >= count:
            raise UsageError(f"--device {device} was asked for, but torch sees {count} CUDA GPU(s) "
                             f"(cuda:0 to cuda:{count - 1}).", hint="Use --device cuda (the first GPU).")
    return device


def prepare_device(device: str) -> None:
    """Initialise CUDA before the check captures the user's random generators (contract §4).

    torch initialises CUDA lazily, and :class:`~nndiag.seeding.RngState` only captures the CUDA
    generators once it is initialised: left lazy, the first CUDA call inside the check (the
    free-memory query, the first model copy) would initialise and seed them there, after the
    capture, and the user's CUDA generator would come back changed. Initialising first runs any
    seed the user queued (``torch.manual_seed`` before CUDA was used), so the capture holds it.
    """
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.init()


def subject_on_device(subject, device: str):
    """``subject`` with its loss module usable on ``device`` (a moved copy when it holds tensors
    elsewhere: class weights); the model and the batches move in the workbench."""
    from nndiag.subject import loss_on_device

    moved = loss_on_device(subject.loss_fn, device)
    return subject if moved is subject.loss_fn else dataclasses.replace(subject, loss_fn=moved)


def check_paths(paths: Iterable[str | Path], options: RunOptions | None = None,
                progress: ProgressCallback | None = None, host: Any = None) -> Report:
    """Load each model file and check it. A file that does not load becomes a load error.

    ``host`` is the run's :class:`~nndiag.plugins.PluginHost` (built from ``options`` when None).
    """
    from nndiag.loading import load_model_file
    from nndiag.plugins import PluginHost

    options = options or RunOptions()
    host = host if host is not None else PluginHost(options.extra_plugins)
    paths = list(paths)
    started, configs = now_utc(), []  # for the report's run metadata
    reports = []
    for path in paths:
        note_stage(f"importing {path}")
        try:
            subject = load_model_file(path, weights=options.weights)
        except ModelFileError as exc:
            reports.append(SubjectReport(str(path), load_error=str(exc),
                                         load_error_details=traceback.format_exc()))
            continue
        configs.append(getattr(subject, "config", None) or {})
        if len(paths) > 1:
            try:  # a bad nndiag_config in one file must not stop the other files being checked
                reports.append(locate_findings(check_subject(subject, options, progress, host), subject))
            except UsageError as exc:
                reports.append(SubjectReport(str(path), load_error=str(exc),
                                             load_error_details=traceback.format_exc()))
            continue
        reports.append(locate_findings(check_subject(subject, options, progress, host), subject))
    report = with_run_metadata(Report(tuple(reports)), options, paths, configs, started)
    return finish_run(report, host)


def finish_run(report: Report, host: Any) -> Report:
    """Notify plugins that the run is over (``nndiag_run_finished``) and return the report."""
    host.run_finished(report)
    return report


def check_subject(subject, options: RunOptions | None = None,
                  progress: ProgressCallback | None = None, host: Any = None) -> SubjectReport:
    """Run the selected probes on one Subject; the user's generators are restored afterwards."""
    from nndiag.plugins import PluginHost
    from nndiag.probe import ProbeContext, build_config, describe_result
    from nndiag.seeding import seed_everything
    from nndiag.precision import resolve_precision
    from nndiag.workbench import Workbench

    options = options or RunOptions()
    host = host if host is not None else PluginHost(options.extra_plugins)
    available = host.probes()
    cfg = validate_file_config(subject.config, subject.name, list(available))
    only = list(options.probes) or list(cfg.get("probes", []))
    # An explicit --probe wins over the file's own skip list; --skip always applies.
    file_skip = [p for p in cfg.get("skip", []) if p not in options.probes]
    skip = list(options.skip) + file_skip
    specs = host.select(only, skip)
    if not specs:
        raise UsageError(f"No probe left to run on {subject.name}: every selected probe is skipped.",
                         hint="Check --probe/--skip and the file's nndiag_config.")
    from_cli = options.seed is not None
    seed = validate_seed(options.seed if from_cli else cfg.get("seed", 0),
                         "--seed" if from_cli else f"nndiag_config['seed'] of {subject.name}")
    device = resolve_device(options.device or cfg.get("device", "cpu"))
    prepare_device(device)
    subject = subject_on_device(subject, device)
    limit = validate_time_limit(
        options.time_limit if options.time_limit is not None else cfg.get("time_limit", DEFAULT_TIME_LIMIT),
        "--time-limit" if options.time_limit is not None else f"nndiag_config['time_limit'] of {subject.name}")
    check_setting_ids(options.settings, available)
    configs = []
    for spec in specs:  # every setting is checked before anything runs
        config = build_config(spec.cls, probe_settings(spec.id, cfg, options))
        validate_probe_config(spec.id, config)
        configs.append(config)

    # Plan the measurement passes of the selected probes, so each is computed once (nndiag.passes).
    plan = plan_passes(spec.cls(build_config(spec.cls, probe_settings(spec.id, cfg, options))) for spec in specs)
    _warm_up_torch()
    bench = Workbench(subject, device=device, seed=seed, precision=resolve_precision(
        options.autocast or cfg.get("autocast"), device,
        "--autocast" if options.autocast else f"nndiag_config['autocast'] of {subject.name}"))
    shared: dict[Any, Any] = {}
    results = []
    with preserved_process_state(), exits_raise(), torch_threads(options.threads):
        failure, loss_error = file_level_failure(bench, limit)
        if failure is not None:
            return failure
        for index, (spec, config) in enumerate(zip(specs, configs)):
            if progress is not None:
                progress(subject.name, spec.id, index, len(specs))
            note_stage(f"running the {spec.id} probe on {subject.name}")
            seed_everything(seed)
            refusal = memory_refusal(bench.model_bytes, bench.free_bytes, spec.id)
            if refusal:
                result = ProbeResult(spec.id, Status.SKIP, f"skipped: {refusal}")
            else:
                result = run_probe(spec.cls(config), ProbeContext(bench, shared, spec.id, plan), time_limit=limit)
            result = describe_result(result, spec.cls, config)  # what writers need, from the class
            results.append(result)
            host.probe_finished(subject.name, result)
    report = SubjectReport(subject.name, tuple(results))
    if loss_error is not None and not any(r.status in (Status.WARN, Status.FAIL) for r in results):
        # The loss cannot be computed and no probe found why: that is the one thing to say.
        return SubjectReport(subject.name, load_error=str(loss_error), load_error_details="".join(
            traceback.format_exception(loss_error)))
    return collapse_repeated_errors(report)


def check_setting_ids(settings, available) -> None:
    """UsageError for a --set (or settings=) naming a probe that does not exist."""
    unknown = sorted(set(settings or {}) - set(available))
    if unknown:
        raise UsageError(f"Unknown probe id {unknown[0]!r} in the settings (--set {unknown[0]}.KEY=VALUE).",
                         hint=f"Known probes: {', '.join(available)}.")


def file_level_failure(bench, limit: float | None) -> tuple[SubjectReport | None, SubjectError | None]:
    """A load-error report when the model, its data or its optimizer cannot be produced at all (or
    would not fit in memory): said once, at file level, instead of once per probe. Also the error of
    a loss that cannot be computed, which the caller weighs after the probes ran."""
    from nndiag.limits import ProbeTimeout, available_bytes, estimate_model_bytes, time_limit

    name = bench.subject.name
    bench.model_bytes = estimate_model_bytes(bench.subject)
    bench.free_bytes = available_bytes(bench.device)
    refusal = memory_refusal(bench.model_bytes, bench.free_bytes, None)
    if refusal:
        return SubjectReport(name, load_error=refusal), None
    note_stage(f"building the model, the data and the loss of {name}")
    try:
        with time_limit(limit):
            return None, bench.preflight()
    except SubjectError as exc:
        return SubjectReport(name, load_error=str(exc),
                             load_error_details=traceback.format_exc()), None
    except ProbeTimeout:
        return SubjectReport(name, load_error=(
            f"Building the model and computing one loss did not finish "
            f"within the time limit of {limit:g} s (it was running {bench.activity or 'the file'}). "
            "Raise it with --time-limit SECONDS (or nndiag_config['time_limit']), or check a smaller "
            "model or batch.")), None


def collapse_repeated_errors(report: SubjectReport) -> SubjectReport:
    """One message for an error several probes hit: the first keeps it, the others point to it;
    when every probe hit the same one, it becomes the file-level error."""
    errors = [r for r in report.results if r.status is Status.ERROR]
    if len(errors) < 2:
        return report
    if len(errors) == len(report.results) and len({r.summary for r in errors}) == 1:
        return SubjectReport(report.subject, load_error=errors[0].summary,
                             load_error_details=errors[0].details)
    first: dict[str, str] = {}
    results = []
    for r in report.results:
        if r.status is Status.ERROR and r.summary in first:
            same = f"the same error as the {first[r.summary]} probe (see there)"
            r = dataclasses.replace(r, summary=same, findings=(Finding(Status.ERROR, same),))
        elif r.status is Status.ERROR:
            first[r.summary] = r.probe
        results.append(r)
    return dataclasses.replace(report, results=tuple(results))


_WARM = False


def _warm_up_torch() -> None:
    """Pay torch's one-off lazy imports before the probes, so probe times mean what they say.

    The first ``torch.optim`` optimizer built in a process imports ``torch._dynamo`` (2-3 s here);
    without this the first probe that builds one would be charged for it.
    """
    global _WARM
    if not _WARM:
        import torch

        torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
        _WARM = True


@contextmanager
def torch_threads(threads: int | None):
    """Use ``threads`` torch threads inside the block, then restore the caller's setting.

    Small models run fastest on one thread, and on a busy machine torch's default (one per core)
    can be 10-30x slower (measured: benchmarks/check_all_probes.py --threads).
    """
    import torch

    if threads is None:
        yield
        return
    if threads < 1:
        raise UsageError(f"--threads must be at least 1, got {threads}.", hint="Use e.g. --threads 1.")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_probe(probe, ctx, time_limit: float | None = None) -> ProbeResult:
    """Run one probe; skips, user-code errors and probe crashes become results, never exceptions.

    Past ``time_limit`` seconds the probe ends as ``skip``, saying what it was running.
    """
    from nndiag.limits import ProbeTimeout
    from nndiag.limits import time_limit as limited
    from nndiag.probe import Outcome

    out = Outcome()
    start = time.perf_counter()
    details = ""
    try:
        with limited(time_limit):
            probe.run(ctx, out)
    except ProbeTimeout:
        doing = getattr(ctx.bench, "activity", "") or "its own computation"
        out.findings.clear()  # a partial verdict is no verdict: slowness is not a finding
        out.skip_reason = (f"stopped at the time limit of {time_limit:g} s while running {doing}; "
                           "nothing is judged. Raise it with --time-limit SECONDS (or "
                           "nndiag_config['time_limit']), or check a smaller model or batch.")
        out.summary = f"time limit {time_limit:g} s: stopped in {doing} (raise --time-limit)"
    except (SystemExit, ProcessExit) as exc:  # user code reached without the workbench
        how = f"sys.exit({exc.code})" if isinstance(exc, SystemExit) else str(exc)
        msg = (f"the model file's code called {how} while the {probe.id} probe ran, which would end "
               "nndiag's process. Remove the exit (raise an exception instead).")
        return _error_result(probe.id, msg, traceback.format_exc(), time.perf_counter() - start, out)
    except ProbeSkipped as exc:
        out.skip_reason = exc.reason
        out.summary = out.summary or f"skipped: {exc.reason}"
    except (SubjectError, NndiagError) as exc:
        details = traceback.format_exc()
        return _error_result(probe.id, str(exc), details, time.perf_counter() - start, out)
    except Exception as exc:  # noqa: BLE001 - a probe bug must not take down the whole run
        if "not supported on ScriptModules" in str(exc):  # hooks: TorchScript has none
            out.findings.clear()
            out.skip_reason = ("this probe watches the forward pass with hooks, which TorchScript "
                               "modules do not support; check the Python module before scripting it.")
            return ProbeResult(probe.id, Status.SKIP, f"skipped: {out.skip_reason}",
                               seconds=time.perf_counter() - start)
        details = traceback.format_exc()
        msg = (f"the {probe.id} probe crashed with {type(exc).__name__}: {exc}. This is a bug in "
               "the probe; please report it with the output of --traceback.")
        return _error_result(probe.id, msg, details, time.perf_counter() - start, out)
    seconds = time.perf_counter() - start
    status = out.status
    summary = out.summary or _default_summary(status, out)
    return ProbeResult(probe.id, status, summary, tuple(out.findings), dict(out.metrics),
                       dict(out.data), seconds, charts=tuple(out.charts))


def _error_result(probe_id: str, message: str, details: str, seconds: float, out) -> ProbeResult:
    from nndiag.report import Finding

    finding = Finding(Status.ERROR, message)
    return ProbeResult(probe_id, Status.ERROR, message, (finding,), dict(out.metrics),
                       dict(out.data), seconds, details)


def _default_summary(status: Status, out) -> str:
    bad = [f for f in out.findings if f.severity in (Status.WARN, Status.FAIL)]
    if not bad:
        return "ok"
    first = bad[0]
    more = f" (+{len(bad) - 1} more)" if len(bad) > 1 else ""
    return f"{first.message}{more}"
