"""The ``nndiag`` command line: parse, call the core, render. No logic lives here.

Importing this module must not import torch, so ``nndiag --help`` answers instantly; the core is
imported inside the commands.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from nndiag import __version__
from nndiag.errors import NndiagError
from nndiag.options import RunOptions, option_help, parse_settings
from nndiag.report import FailOn

EXIT_HELP = """Exit status: 0 when no probe reached the --fail-on level, 1 when one did (or a probe
could not run), 2 when nothing could be checked (bad usage, the file does not load, required names
missing)."""


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nndiag")
def main() -> None:
    """nndiag tells you, before a long training run, whether a PyTorch model can train at all,
    and if not, why."""


@main.command(epilog=EXIT_HELP)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option("--probe", "probes", multiple=True, metavar="ID", help=option_help("probes"))
@click.option("--skip", "skip", multiple=True, metavar="ID", help=option_help("skip"))
@click.option("--json", "json_path", metavar="PATH", help="Write the JSON report here ('-' for stdout).")
@click.option("--csv", "csv_path", metavar="PATH", help="Write the long-form CSV report here ('-' for stdout).")
@click.option("--html", "html_path", metavar="PATH", help="Write the self-contained HTML report here ('-' for stdout).")
@click.option("--junit", "junit_path", metavar="PATH",
              help="Write a JUnit XML report here, one test case per probe (GitLab, Jenkins, Azure).")
@click.option("--sarif", "sarif_path", metavar="PATH",
              help="Write a SARIF 2.1.0 report here, one result per finding (GitHub code scanning).")
@click.option("--report", "reports", multiple=True, metavar="FORMAT=PATH",
              help="Write the report with any registered writer (see `nndiag writers`), e.g. --report "
              "json=out.json; PATH alone picks the writer by its suffix (repeatable).")
@click.option("--seed", type=int, default=None,
              help=option_help("seed") + "  [default: the file's nndiag_config seed, else 0]")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default=None,
              help=option_help("device") + "  [default: the file's nndiag_config device, else cpu]")
@click.option("--autocast", type=click.Choice(["off", "bf16", "fp16"]), default=None, metavar="MODE",
              help=option_help("autocast") + "  [default: the file's nndiag_config autocast, else off]")
@click.option("--fail-on", default="fail", show_default=True, type=click.Choice([f.value for f in FailOn]),
              help="The lowest probe status that makes the exit status 1.")
@click.option("--set", "settings", multiple=True, metavar="PROBE.KEY=VALUE", help=option_help("settings"))
@click.option("--weights", metavar="PATH", type=click.Path(dir_okay=False, path_type=str),
              help=option_help("weights"))
@click.option("--data-dir", metavar="DIR", type=click.Path(file_okay=False, path_type=str),
              help="Data root for model files that read NNDIAG_DATA_DIR (the reference models do).")
@click.option("--download", is_flag=True,
              help="Let model files that read NNDIAG_DOWNLOAD download their data (the reference models "
              "fetch the full MNIST through torchvision; needs a network).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
              help=option_help("threads") + "  [default: torch's own]")
@click.option("--time-limit", type=float, default=None, metavar="SECONDS",
              help=option_help("time_limit") + "  [default: the file's nndiag_config time_limit, else 300]")
@click.option("--traceback", "show_traceback", is_flag=True, help="Show full tracebacks of errors.")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems and the verdict line.")
@click.option("--verbose", "-v", is_flag=True, help="Print every finding in full, and the run metadata.")
def check(files, probes, skip, json_path, csv_path, html_path, junit_path, sarif_path, reports, seed, device,
          autocast, fail_on, settings, weights, data_dir, download, threads, time_limit, show_traceback, quiet,
          verbose) -> None:
    """Check one or more model files.

    A model file is a plain Python file that defines build_model() (or model), data
    (sample_batch(), train_loader or dataloader()) and loss_fn (or training_step / train_step).
    The full list, with examples: docs/model-file.md in the nndiag repository."""
    from nndiag.run_metadata import remember_command

    remember_command()  # the command line as typed, for the report's run metadata
    from nndiag.isolation import note_exit, run_cli_isolated, should_isolate

    if should_isolate():  # a model file that ends the process must not look like success
        sys.exit(run_cli_isolated(["check", *_as_args(click.get_current_context())]))
    from nndiag.progress import progress_display
    from nndiag.plugins import PluginHost
    from nndiag.runner import check_paths
    from nndiag import rank_job
    from nndiag.ranks import is_rank_zero

    try:  # relative report paths mean the folder nndiag was started in, whatever the file does
        rank_job.join_launched_job(device)  # under torchrun: this rank's process group (docs/distributed.md)
        json_path, csv_path, html_path, junit_path, sarif_path = (_output_path(flag, p) for flag, p in (
            ("--json", json_path), ("--csv", csv_path), ("--html", html_path), ("--junit", junit_path),
            ("--sarif", sarif_path)))
    except NndiagError as exc:
        _fail_usage(exc, show_traceback)
    if data_dir:
        os.environ["NNDIAG_DATA_DIR"] = str(Path(data_dir).resolve())
    if download:
        os.environ["NNDIAG_DOWNLOAD"] = "1"
    if html_path:  # import matplotlib in the background while the probes run
        from nndiag.writers.html import preload

        preload()
    try:
        options = RunOptions(probes=probes, skip=skip, seed=seed, device=device, autocast=autocast,
                             settings=parse_settings(settings), weights=weights, threads=threads,
                             time_limit=time_limit)
        with progress_display(quiet=quiet or not is_rank_zero()) as progress:
            host = PluginHost(options.extra_plugins)  # one per run: probes, writers, listeners
            targets = _report_targets(host, json_path, csv_path, html_path, reports,
                                      junit_path=junit_path, sarif_path=sarif_path)
            # one rank or every rank of a job: the report merged over the ranks (nndiag.rank_merge)
            report = rank_job.on_every_rank(lambda: check_paths(files, options, progress=progress, host=host))
        if is_rank_zero():  # the other ranks of a job print nothing and write no files
            _write_reports(report, targets, host)
    except NndiagError as exc:
        _fail_usage(exc, show_traceback)
    to_stdout = any(path == "-" for _, _, path in targets)
    from nndiag.writers import text

    if is_rank_zero():
        click.echo(text.render(report, quiet=quiet, traceback=show_traceback, verbose=verbose), nl=False,
                   err=to_stdout)
    from nndiag.writers import github

    if github.enabled() and is_rank_zero():  # annotations on the pull request, at the user's source lines
        click.echo(github.render(report), nl=False, err=to_stdout)
    code = rank_job.leave_launched_job(report.exit_code(fail_on))  # every rank of a job: rank 0's
    note_exit(code)
    sys.exit(code)


def _as_args(ctx: click.Context) -> list[str]:
    """The command line that gives ``ctx.params`` again (for the isolated child process)."""
    args: list[str] = []
    positional: list[str] = []
    for p in ctx.command.params:
        value = ctx.params.get(p.name)
        if isinstance(p, click.Argument):
            positional += [str(v) for v in value] if isinstance(value, (tuple, list)) else [str(value)]
        elif value is None or value == () or value is False:
            continue
        elif getattr(p, "is_flag", False):
            args.append(p.opts[0])
        elif p.multiple:
            for v in value:
                args += [p.opts[0], str(v)]
        else:
            args += [p.opts[0], str(value)]
    return args + ["--", *positional]


def _output_path(flag: str, path: str | None) -> str | None:
    """``path`` made absolute (a file that changes the working folder must not move the report);
    UsageError when it is a folder or its parent is a file."""
    if not path or path == "-":
        return path
    from nndiag.errors import UsageError

    target = Path(path).expanduser().resolve()
    if target.is_dir():
        raise UsageError(f"{flag} {path} is a folder; the report needs a file name.",
                         hint=f"Write e.g. {flag} {Path(path) / ('report' + flag.replace('--', '.'))}.")
    parent = next((p for p in target.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UsageError(f"cannot write the {flag} report to {path}: {parent} is a file, not a folder.",
                         hint=f"Pick another path for {flag}.")
    return str(target)


@main.command()
def probes() -> None:
    """List the registered probes: id, one-line description and the plugin providing it."""
    from nndiag.plugins import PluginHost

    try:
        specs = PluginHost().probes()
    except NndiagError as exc:
        _fail_usage(exc, False)
    id_w = max(len("id"), *(len(s.id) for s in specs.values()))
    plugin_w = max(len("plugin"), *(len(s.plugin) for s in specs.values()))
    click.echo(f"{'id':<{id_w}}  {'plugin':<{plugin_w}}  description")
    for s in specs.values():
        click.echo(f"{s.id:<{id_w}}  {s.plugin:<{plugin_w}}  {s.description}")


@main.command()
def writers() -> None:
    """List the registered report writers: format, file suffixes and description."""
    from nndiag.plugins import PluginHost

    try:
        found = PluginHost(builtin_probes=False).writers()
    except NndiagError as exc:
        _fail_usage(exc, False)
    fmt_w = max(len("format"), *(len(w.format) for w in found.values()))
    suf_w = max(len("suffixes"), *(len(", ".join(w.suffixes)) for w in found.values()))
    click.echo(f"{'format':<{fmt_w}}  {'suffixes':<{suf_w}}  description")
    for w in found.values():
        click.echo(f"{w.format:<{fmt_w}}  {', '.join(w.suffixes):<{suf_w}}  {w.description}")


def _report_targets(host, json_path, csv_path, html_path, reports, junit_path=None,
                    sarif_path=None) -> list[tuple[str, str, str]]:
    """(flag, format, path) for every report asked for, each checked against the registered
    writers before anything runs (an unknown format is a usage error, not a lost report)."""
    targets = [(flag, fmt, path) for flag, fmt, path in (("--json", "json", json_path),
                                                          ("--csv", "csv", csv_path),
                                                          ("--html", "html", html_path),
                                                          ("--junit", "junit", junit_path),
                                                          ("--sarif", "sarif", sarif_path)) if path]
    from nndiag.writers import parse_target

    for item in reports:
        fmt, path = parse_target(item)
        if not path:
            from nndiag.errors import UsageError

            raise UsageError(f"--report {item!r} names no file.", hint="Write --report FORMAT=PATH, e.g. "
                             "--report json=out.json ('-' for stdout).")
        targets.append(("--report", host.writer(path, fmt).format, path))
    for _, fmt, path in targets:
        host.writer(path, fmt)
    return targets


def _write_reports(report, targets, host) -> None:
    from nndiag.errors import UsageError
    from nndiag.writers import write_report

    for flag, fmt, path in targets:
        try:
            write_report(report, path, format=fmt, host=host, stdout=lambda text: click.echo(text, nl=False))
        except OSError as exc:
            raise UsageError(f"cannot write the {flag} report to {path}: {exc.strerror or exc}.",
                             hint=f"Pick a writable path for {flag}.") from exc


def _fail_usage(exc: NndiagError, show_traceback: bool) -> None:
    if show_traceback:
        import traceback

        traceback.print_exc()
    from nndiag.rank_job import leave_launched_job
    from nndiag.ranks import is_rank_zero

    if is_rank_zero():  # in a job, the error every rank hit is printed once
        click.echo(f"nndiag: error: {exc}", err=True)
    from nndiag.isolation import note_exit

    code = leave_launched_job(2)
    note_exit(code)
    sys.exit(code)


# `nndiag watch FILE --steps N`: the in-training watch (docs/watch.md); click only, no torch here
from nndiag.watch.command import watch as _watch_command  # noqa: E402

main.add_command(_watch_command)


if __name__ == "__main__":  # pragma: no cover
    main()
