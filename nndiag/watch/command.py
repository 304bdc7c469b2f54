"""``nndiag watch FILE --steps N``: the command-line face of the watch. Parse, call, render.

Importing this module imports click only (``nndiag --help`` stays torch-free); the run itself is
:func:`nndiag.watch.driver.run_subject`. Live output goes to standard error: a progress line per
log interval and each verdict as it happens; the summary table follows, then the exit status of
``nndiag check`` (0 healthy, 1 a check reached ``--fail-on``, 2 the file could not be used).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

EPILOG = """Exit status: 0 when no check reached the --fail-on level, 1 when one did, 2 when nothing
could be watched (bad usage, the file does not load, required names missing)."""


@click.command(epilog=EPILOG)
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--steps", type=click.IntRange(min=1), default=None, metavar="N",
              help="Train this many optimizer steps.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, metavar="N",
              help="Train this many passes over the file's data (instead of --steps).")
@click.option("--json", "json_path", metavar="PATH", help="Write the JSON report here ('-' for stdout).")
@click.option("--csv", "csv_path", metavar="PATH", help="Write the long-form CSV report here ('-' for stdout).")
@click.option("--html", "html_path", metavar="PATH", help="Write the HTML report with timelines here.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for the weights and the data order.")
@click.option("--device", type=click.Choice(["cpu", "cuda", "auto"]), default="cpu", show_default=True,
              help="Where to train; auto picks cuda when available.")
@click.option("--fail-on", default="fail", show_default=True, type=click.Choice(["fail", "warn"]),
              help="The lowest check status that makes the exit status 1.")
@click.option("--policy", "policies", multiple=True, metavar="CHECK=POLICY",
              help="report, warn or stop for one check (e.g. --policy loss=stop) or all (--policy stop).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="A watch setting, e.g. --set log_every=10 (docs/watch.md lists them).")
@click.option("--profile", type=click.Choice(["default", "minimal"]), default="default", show_default=True,
              help="minimal: only the every-step finiteness and gradient-norm checks.")
@click.option("--weights", metavar="PATH", type=click.Path(dir_okay=False, path_type=str),
              help="Start from this state_dict.")
@click.option("--data-dir", metavar="DIR", type=click.Path(file_okay=False, path_type=str),
              help="Data root for model files that read NNDIAG_DATA_DIR (the reference models do).")
@click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N", help="Torch CPU threads.")
@click.option("--quiet", "-q", is_flag=True, help="No progress lines; verdicts and the summary only.")
def watch(file, steps, epochs, json_path, csv_path, html_path, seed, device, fail_on, policies,
          settings, profile, weights, data_dir, threads, quiet) -> None:
    """Train FILE's own setup (model, optimizer, data) with the watch on (docs/watch.md)."""
    from nndiag.errors import NndiagError, UsageError

    try:
        if steps is None and epochs is None:
            raise UsageError("Say how long to train.", hint="Pass --steps N (or --epochs N).")
        options = _settings(settings)
        policy = _policies(policies)
        if data_dir:
            os.environ["NNDIAG_DATA_DIR"] = str(Path(data_dir).resolve())
        report = _run(file, steps, epochs, seed, device, policy, profile, options, weights,
                      threads, quiet)
        for path, fmt in ((json_path, "json"), (csv_path, "csv"), (html_path, "html")):
            if path:
                _write(report, path, fmt)
    except NndiagError as exc:
        click.echo(f"nndiag: error: {exc}", err=True)
        sys.exit(2)
    from nndiag.writers import text

    click.echo(text.render(report), nl=False, err="-" in (json_path, csv_path, html_path))
    sys.exit(report.exit_code(fail_on))


def _run(file, steps, epochs, seed, device, policy, profile, options, weights, threads, quiet):
    import torch

    from nndiag.loading import load_model_file
    from nndiag.watch.driver import run_subject

    from nndiag.runner import prepare_device, resolve_device, subject_on_device

    device = resolve_device(device)  # auto -> cuda when there is one; a clear error for no GPU
    prepare_device(device)  # CUDA initialised before the seeded run captures the generators
    if threads:
        torch.set_num_threads(threads)
    subject = subject_on_device(load_model_file(file, weights=weights), device)
    every = int(options.get("log_every", 25))

    def progress(step, loss):
        if not quiet and step % every == 0:  # the only steps whose loss is read (a sync on CUDA)
            shown = "n/a" if loss is None else f"{float(loss):.4g}"
            click.echo(f"step {step}: loss {shown}", err=True)

    def say(event):
        click.echo(f"step {event.step}: {event.severity.upper()} [{event.check}] {event.message}",
                   err=True)

    w = run_subject(subject, steps=steps, epochs=epochs, seed=seed, device=device,
                    progress=progress, on_event=say, raise_on_stop=False, policy=policy,
                    profile=profile, **options)
    if w.should_stop and w.stop_event is not None:
        click.echo(f"stopped at step {w.stop_event.step} ({w.stop_event.check} policy is stop)", err=True)
    return w.report


def _write(report, path, fmt) -> None:
    import nndiag.writers as writers

    if hasattr(writers, "write_report"):
        writers.write_report(report, path, format=fmt)
        return
    import importlib

    module = {"json": "json_writer", "csv": "csv_writer", "html": "html"}[fmt]
    text = importlib.import_module(f"nndiag.writers.{module}").render(report)
    if path == "-":
        click.echo(text, nl=False)
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")


def _settings(items) -> dict:
    from nndiag.errors import UsageError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--set {item!r} is not of the form KEY=VALUE.", hint="e.g. --set log_every=10.")
        try:
            out[key.replace("-", "_")] = int(value)
        except ValueError:
            try:
                out[key.replace("-", "_")] = float(value)
            except ValueError:
                raise UsageError(f"--set {item!r}: {value!r} is not a number.",
                                 hint="Watch settings are numbers, e.g. --set divergence_factor=5.") from None
    return out


def _policies(items):
    from nndiag.errors import UsageError

    if not items:
        return None
    if len(items) == 1 and "=" not in items[0]:
        return items[0]
    out = {}
    for item in items:
        check, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--policy {item!r} is not CHECK=POLICY.", hint="e.g. --policy nan=stop.")
        out[check] = value
    return out
