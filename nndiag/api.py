"""The Python API: ``nndiag.check(...)`` on a model file or on objects passed directly.

The pytest fixture and user scripts call this; the CLI calls :func:`nndiag.runner.check_paths`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from nndiag.errors import UsageError
from nndiag.report import Report


def check(
    path: str | Path | None = None,
    *,
    model: Any = None,
    batch: Any = None,
    batches: Iterable[Any] | Callable[[], Iterable[Any]] | None = None,
    loss_fn: Callable[..., Any] | None = None,
    optimizer: Callable[..., Any] | None = None,
    training_step: Callable[..., Any] | None = None,
    train_step: Callable[..., Any] | None = None,
    probes: Sequence[str] = (),
    skip: Sequence[str] = (),
    seed: int | None = None,
    device: str | None = None,
    autocast: str | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    weights: str | Path | None = None,
    name: str | None = None,
    plugins: Sequence[object] = (),
    threads: int | None = None,
    time_limit: float | None = None,
    **probe_settings: Mapping[str, Any],
) -> Report:
    """Run probes and return the :class:`~nndiag.report.Report`.

    Either ``path`` (a model file, contract §1) or ``model`` (an ``nn.Module``, never modified, or a
    zero-argument factory) with ``batch`` (one ``(inputs, targets)``) or ``batches`` and
    ``loss_fn``/``training_step``/``train_step``. ``optimizer`` is a factory ``params -> Optimizer``.
    Per-probe settings go in ``settings={"overfit": {"steps": 300}}``; ``seed`` and ``device``
    default to the file's ``nndiag_config`` values, else 0 and ``cpu``; ``autocast`` ("bf16", "fp16")
    runs every forward under ``torch.autocast`` (docs/mixed-precision.md). Settings also go in
    as keywords with the probe
    id's dashes written as underscores: ``overfit={"steps": 300}``, ``lr_range={...}``. ``threads``
    sets torch's CPU threads while the probes run (restored afterwards); ``time_limit`` the seconds one
    probe may run (default: the file's ``nndiag_config``, else 300; 0: none).

    Inside an initialised ``torch.distributed`` process group of several ranks, every rank must
    call it: each checks on its own process and every rank gets the merged report, the ranks
    named where their verdicts differ (docs/distributed.md).
    """
    from nndiag.options import run_options
    from nndiag.plugins import PluginHost
    from nndiag.runner import check_paths, check_subject, finish_run

    # keyword settings first: an explicit settings= wins over them, key by key
    options = run_options(**probe_settings, probes=probes, skip=skip, seed=seed, device=device,
                          autocast=autocast, settings=settings, weights=weights, plugins=plugins, threads=threads,
                          time_limit=time_limit)
    host = PluginHost(options.extra_plugins)  # one per run: the probes, writers and listeners
    if path is not None and model is not None:
        raise UsageError("check() got both a model file and model=.", hint="Pass one of them.")

    def run_here() -> Report:
        if path is not None:
            return check_paths([path], options, host=host)
        from nndiag.run_metadata import now_utc, with_run_metadata

        started = now_utc()
        subject = subject_from_objects(model=model, batch=batch, batches=batches, loss_fn=loss_fn,
                                       optimizer=optimizer, training_step=training_step,
                                       train_step=train_step, name=name)
        from nndiag.source_lines import locate_findings

        report = Report((locate_findings(check_subject(subject, options, host=host), subject),))
        return finish_run(with_run_metadata(report, options, started=started), host)

    from nndiag.rank_job import on_every_rank

    # in an initialised process group of several ranks: every rank checks, all get the merged report
    return on_every_rank(run_here)


def check_probe(probe: str, path: str | Path | None = None, /, **kwargs: Any):
    """Run one probe on one subject and return its :class:`~nndiag.report.ProbeResult`.

    Same arguments as :func:`check` (without ``probes``). A model file that does not load raises
    :class:`~nndiag.errors.ModelFileError` with the same message ``nndiag check`` prints.
    """
    from nndiag.errors import ModelFileError

    (subject,) = check(path, probes=[probe], **kwargs).subjects
    if subject.load_error:
        raise ModelFileError(subject.load_error)
    return subject.result(probe)


def subject_from_objects(*, model, batch=None, batches=None, loss_fn=None, optimizer=None,
                         training_step=None, train_step=None, name=None):
    """A Subject from objects in memory, validated like a model file (same messages)."""
    import torch

    from nndiag.subject import Subject, copy_user_model

    if model is None:
        raise UsageError("check() needs a model file or model=.",
                         hint="Pass check('model.py') or check(model=MyNet(), batch=(x, y), loss_fn=...).")
    if isinstance(model, torch.nn.Module):
        factory, source, user_model = copy_user_model(model), "model", model
    elif callable(model):
        factory, source, user_model = model, "model()", None
    else:
        raise UsageError(f"model= is a {type(model).__name__}, not an nn.Module or a factory.",
                         hint="Pass model=MyNet() or model=lambda: MyNet().")
    if batch is not None and batches is not None:
        raise UsageError("check() got both batch= and batches=.", hint="Pass one of them.")
    if batch is not None:
        source_fn, data_source = (lambda: [batch]), "batch"
    elif batches is not None:
        source_fn = batches if callable(batches) else (lambda: batches)
        data_source = "batches"
    else:
        raise UsageError("check() needs data: batch=(inputs, targets) or batches=<iterable>.",
                         hint="e.g. batch=(torch.randn(32, 784), torch.randint(0, 10, (32,))).")
    if loss_fn is None and training_step is None and train_step is None:
        raise UsageError("check() needs loss_fn=, training_step= or train_step=.",
                         hint="e.g. loss_fn=torch.nn.CrossEntropyLoss().")
    if isinstance(loss_fn, type):
        raise UsageError(f"loss_fn= is the class {loss_fn.__name__}, not a loss object.",
                         hint=f"Pass loss_fn=torch.nn.{loss_fn.__name__}() (with parentheses).")
    if isinstance(optimizer, torch.optim.Optimizer):
        # The user's own optimizer object: nndiag builds one like it over each copy's parameters
        # (nndiag.optimizers.own_copy) and never steps this one.
        from nndiag.optimizers import own_copy

        optimizer = (lambda params, given=optimizer: own_copy(given, params))
    if name is None:  # the instance's class, or the factory's own name (a lambda has none)
        name = type(user_model).__name__ if user_model is not None else getattr(model, "__name__", "model")
        name = "model" if name == "<lambda>" else name
    return Subject(name=name, model_factory=factory,
                   batches=source_fn, loss_fn=loss_fn, optimizer_factory=optimizer,
                   training_step=training_step, train_step=train_step, model_source=source,
                   data_source=data_source, user_model=user_model)
