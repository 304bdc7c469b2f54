"""The one definition of nndiag's run options, and everything derived from it.

:class:`RunOptions` is the list of options. Each field's metadata says how it reaches the user:
its help sentence, its ``nndiag check`` flag, whether a model file's ``nndiag_config`` may set it,
and whether the pytest plugin offers it as ``--nndiag-<name>`` / ini ``nndiag_<name>``. From it
come :data:`CHECK_KEYWORDS` (what ``nndiag.check`` and the pytest helpers accept), :data:`CONFIG_KEYS`
(what ``nndiag_config`` accepts), the CLI help and the pytest options, so they cannot drift apart.

This module imports neither torch nor click: the pytest plugin and ``nndiag --help`` load it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from nndiag.errors import UsageError


def option(default: Any = None, *, help: str, cli: str | None = None, in_file: bool = False,
           pytest: bool = False, keyword: str | None = None, factory: Any = None) -> Any:
    """A RunOptions field with how it is offered: ``cli`` flag, ``in_file`` (``nndiag_config``),
    ``pytest`` (``--nndiag-<name>``), ``keyword`` (its ``nndiag.check`` name, default the field's)."""
    meta = {"help": help, "cli": cli, "in_file": in_file, "pytest": pytest, "keyword": keyword}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunOptions:
    """What to run and how: the command-line options, also the keyword arguments of ``check``."""

    probes: Sequence[str] = option((), cli="--probe", in_file=True,
                                   help="Run only this probe (repeatable). See `nndiag probes` for the ids.")
    skip: Sequence[str] = option((), cli="--skip", in_file=True, help="Do not run this probe (repeatable).")
    seed: int | None = option(None, cli="--seed", in_file=True, pytest=True,
                              help="Seed for torch, numpy and random before every probe.")
    device: str | None = option(None, cli="--device", in_file=True, pytest=True,
                                help="Where the probes run; auto picks cuda when available.")
    settings: Mapping[str, Mapping[str, Any]] = option(
        cli="--set", factory=dict, help="Override a probe setting, e.g. --set overfit.steps=300 (repeatable).")
    weights: str | Path | None = option(None, cli="--weights", in_file=True,
                                        help="Load this state_dict into every fresh model (check a trained model).")
    extra_plugins: Sequence[object] = option((), keyword="plugins",
                                             help="Plugin objects to register for this run only.")
    threads: int | None = option(None, cli="--threads", pytest=True,
                                 help="Torch CPU threads while the probes run (1 is fastest for small models "
                                 "on a busy machine).")
    autocast: str | None = option(None, cli="--autocast", in_file=True, pytest=True,
                                  help="Run every forward of the check under torch.autocast: off, bf16 "
                                  "(CPU or CUDA) or fp16 (nndiag's own steps then use a GradScaler). "
                                  "See docs/mixed-precision.md.")
    time_limit: float | None = option(None, cli="--time-limit", in_file=True,
                                      help="Seconds one probe may run; past it the probe skips, saying what "
                                      "it was doing (0: no limit).")


def run_option_fields() -> tuple[dataclasses.Field, ...]:
    """The fields of :class:`RunOptions`, in order."""
    return dataclasses.fields(RunOptions)


def _meta(name: str) -> Mapping[str, Any]:
    return next(f.metadata for f in run_option_fields() if f.name == name)


def option_help(name: str) -> str:
    """The help sentence of option ``name`` (for the CLI and the pytest options)."""
    return str(_meta(name)["help"])


def option_type(name: str) -> type:
    """The scalar type of option ``name`` (int, float or str), for parsing it from text."""
    annotation = str(next(f.type for f in run_option_fields() if f.name == name))
    first = annotation.split("|")[0].strip()
    return {"int": int, "float": float}.get(first, str)


def keyword_of(f: dataclasses.Field) -> str:
    """The ``nndiag.check`` keyword of a RunOptions field."""
    return f.metadata.get("keyword") or f.name


# Keywords of nndiag.check that describe the subject itself (objects passed in memory).
OBJECT_KEYWORDS: tuple[str, ...] = ("model", "batch", "batches", "loss_fn", "optimizer",
                                    "training_step", "train_step", "name")
OPTION_KEYWORDS: tuple[str, ...] = tuple(keyword_of(f) for f in run_option_fields())
CHECK_KEYWORDS: frozenset[str] = frozenset(OBJECT_KEYWORDS + OPTION_KEYWORDS)
CONFIG_KEYS: frozenset[str] = frozenset(f.name for f in run_option_fields() if f.metadata["in_file"])
PYTEST_OPTIONS: tuple[str, ...] = tuple(f.name for f in run_option_fields() if f.metadata["pytest"])


def probe_key(key: str) -> str:
    """A probe id as written in a keyword (``lr_range``) back to its id (``lr-range``)."""
    return key.replace("_", "-")


def setting_key(key: str) -> str:
    """A setting name as written on the command line (``max-steps``) to its field (``max_steps``)."""
    return key.replace("-", "_")


def split_keywords(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options split into check keywords and one ``settings`` dict keyed by probe id.

    Anything that is not a check keyword is a per-probe settings dict (``overfit={"steps": 100}``,
    ``lr_range={...}``); TypeError when it is not a dict, since that is almost always a typo.
    """
    out: dict[str, Any] = {}
    settings: dict[str, dict[str, Any]] = {}
    for key, value in kwargs.items():
        if key == "settings":
            for pid, s in (value or {}).items():
                settings.setdefault(pid, {}).update(s or {})
        elif key in CHECK_KEYWORDS:
            out[key] = value
        else:
            if not isinstance(value, Mapping):
                raise TypeError(f"nndiag option {key}={value!r}: per-probe settings must be a dict, "
                                f"e.g. {key}={{'steps': 100}}.")
            settings.setdefault(probe_key(key), {}).update(value)
    if settings:
        out["settings"] = settings
    return out


def merge_options(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge option layers, later ones winning; per-probe settings are merged key by key."""
    out: dict[str, Any] = {}
    for layer in layers:
        norm = split_keywords(layer)
        settings = norm.pop("settings", None)
        out.update(norm)
        if settings:
            merged = out.setdefault("settings", {})
            for pid, s in settings.items():
                merged[pid] = {**merged.get(pid, {}), **s}
    return out


def run_options(**kwargs: Any) -> RunOptions:
    """RunOptions from ``nndiag.check``'s option keywords (``plugins=`` and per-probe dicts too)."""
    norm = split_keywords(kwargs)
    unknown = sorted(set(norm) - set(OPTION_KEYWORDS))
    if unknown:
        raise TypeError(f"not a run option: {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for f in run_option_fields():
        key = keyword_of(f)
        if key in norm and norm[key] is not None:
            values[f.name] = norm[key]
    for name in ("probes", "skip", "extra_plugins"):
        if name in values:
            values[name] = tuple(values[name])
    return RunOptions(**values)


def parse_settings(items: Iterable[str]) -> dict[str, dict[str, str]]:
    """``("overfit.steps=300",)`` -> ``{"overfit": {"steps": "300"}}``; UsageError on bad syntax."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        probe, dot, name = key.partition(".")
        if not sep or not dot or not probe or not name:
            raise UsageError(f"--set {item!r} is not of the form PROBE.KEY=VALUE.",
                             hint="Write e.g. --set overfit.steps=300.")
        out.setdefault(probe, {})[setting_key(name)] = value
    return out


def validate_file_config(config: Mapping[str, Any], subject: str, probe_ids: Sequence[str]) -> dict[str, Any]:
    """A model file's ``nndiag_config``, checked: a misspelled key is an error, never ignored.

    ``probes``/``skip`` given as one string become one-item lists; a probe id must map to a dict.
    """
    cfg = dict(config)
    unknown = sorted(k for k in cfg if k not in CONFIG_KEYS and k not in probe_ids)
    if unknown:
        raise UsageError(
            f"nndiag_config of {subject} has unknown key(s): {', '.join(map(repr, unknown))}.",
            hint=f"Valid keys: {', '.join(sorted(CONFIG_KEYS))}, or a probe id ({', '.join(probe_ids)}).")
    for key in ("probes", "skip"):
        if isinstance(cfg.get(key), str):
            cfg[key] = [cfg[key]]
    for key in probe_ids:
        if key in cfg and not isinstance(cfg[key], Mapping):
            raise UsageError(f"nndiag_config[{key!r}] of {subject} must be a dict of settings.",
                             hint=f'Write e.g. nndiag_config = {{"{key}": {{...}}}}.')
    return cfg


def probe_settings(probe_id: str, file_config: Mapping[str, Any], options: RunOptions) -> dict[str, Any]:
    """One probe's settings: the run's (command line, keywords) over the file's ``nndiag_config``."""
    return {**dict(file_config.get(probe_id, {}) or {}), **dict(options.settings.get(probe_id, {}) or {})}
