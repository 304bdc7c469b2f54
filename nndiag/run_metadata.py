"""Run metadata: what a report was made with, so a CI artifact read weeks later can be reproduced.

:func:`collect` returns a plain dict (``Report.metadata``, the JSON report's ``run`` object):

``nndiag``, ``torch``, ``python`` (versions), ``platform``, ``device``, ``threads``, ``seed``,
``command`` (the command line, as a list), ``started`` (UTC, ISO 8601), ``hostname``,
``files``: each checked model file's path and the SHA-256 of its bytes, and ``world_size``: the
ranks of the ``torch.distributed`` job that checked (1 for one process; docs/distributed.md).

``seed`` and ``device`` are the values asked for (``--seed``/``--device`` or ``check(seed=...)``);
when none was given, ``seed``/``device`` say ``None`` and each file's ``nndiag_config`` (else 0 and
``cpu``) applied, as the runner resolves them. ``threads`` is ``--threads`` when given, else torch's
own setting at the time of the run. No torch import at the top: the pytest plugin imports the report
module, and torch is only read here when it is already loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

COMMAND_ENV = "NNDIAG_COMMAND"  # the CLI's command line, for its isolated child process
CHILD_ENV = "NNDIAG_STATUS_FILE"  # set in that child (nndiag.isolation)

KEYS: tuple[str, ...] = ("nndiag", "torch", "python", "platform", "device", "threads", "seed",
                         "command", "started", "hostname", "files", "world_size")


def remember_command(argv: Iterable[str] | None = None) -> None:
    """Keep the command line as the user typed it (``nndiag check ...``) for a child process that
    runs the check (``nndiag.isolation``); the child inherits it and reports it, not its own."""
    if os.environ.get(CHILD_ENV):
        return  # the child: the parent has set it
    args = list(sys.argv if argv is None else argv)
    if args:
        args[0] = os.path.basename(args[0]) or args[0]
    os.environ[COMMAND_ENV] = json.dumps(args)


def command_line() -> list[str]:
    """The command line of this run: the CLI parent's when this is its isolated child, else
    ``sys.argv``."""
    if os.environ.get(CHILD_ENV) and os.environ.get(COMMAND_ENV):
        try:
            return [str(a) for a in json.loads(os.environ[COMMAND_ENV])]
        except (ValueError, TypeError):
            pass
    return list(sys.argv)


def file_sha256(path: str | Path) -> str | None:
    """The SHA-256 of the file's bytes (hex), or None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def now_utc() -> str:
    """The current time in UTC, ISO 8601 to the second (``2026-12-02T05:10:00+00:00``)."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def _torch_info(threads: int | None) -> tuple[str | None, int | None]:
    torch = sys.modules.get("torch")  # never import it here: only report what the run loaded
    if torch is None:
        return None, threads
    return str(getattr(torch, "__version__", "")), threads if threads is not None else torch.get_num_threads()


def _world_size() -> int:
    """The ranks of the initialised process group, 1 without one. Read through ``sys.modules``,
    as the torch version is: nndiag.ranks imports torch, which the writers reading this must not."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return 1
    return int(dist.get_world_size())


def collect(*, seed: int | None = None, device: str | None = None, threads: int | None = None,
            files: Iterable[str | Path] = (), started: str | None = None,
            argv: Iterable[str] | None = None) -> dict[str, Any]:
    """The metadata of a run with these settings over these model ``files`` (see the module doc)."""
    from nndiag import __version__

    torch_version, threads = _torch_info(threads)
    file_rows = []
    for f in files:
        path = Path(f)
        if path.is_file():
            file_rows.append({"path": str(f), "sha256": file_sha256(path)})
    return {
        "nndiag": __version__,
        "torch": torch_version,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "device": device,
        "threads": threads,
        "seed": seed,
        "command": command_line() if argv is None else list(argv),
        "started": started or now_utc(),
        "hostname": socket.gethostname(),
        "files": file_rows,
        "world_size": _world_size(),
    }


def summary_line(meta: Mapping[str, Any]) -> str:
    """One line for the terminal and the HTML header: versions, device, threads, seed, host, time."""
    if not meta:
        return ""
    seed = meta.get("seed")
    parts = [f"nndiag {meta.get('nndiag')}", f"torch {meta.get('torch')}", f"Python {meta.get('python')}",
             f"device {meta.get('device') or 'per file (default cpu)'}",
             f"threads {meta.get('threads')}", f"seed {seed if seed is not None else 'per file (default 0)'}",
             f"{meta.get('hostname')}", f"{meta.get('started')}"]
    if (meta.get("world_size") or 1) > 1:  # a torch.distributed job: how many ranks checked
        parts.insert(3, f"{meta['world_size']} ranks")
    return ", ".join(parts)


def _one(values: set, default: Any) -> Any:
    """The single value every file used, ``default`` when there are none, ``"per file"`` otherwise."""
    if not values:
        return default
    return next(iter(values)) if len(values) == 1 else "per file"


def with_run_metadata(report, options, paths: Iterable[str | Path] = (),
                      configs: Iterable[Mapping[str, Any]] = (), started: str | None = None):
    """``report`` with :func:`collect`'s metadata for a run of ``options`` (a RunOptions) over
    ``paths``. ``configs`` are the loaded files' ``nndiag_config`` dicts: when ``--seed``/``--device``
    were not given, the seed and device are the files' own (else 0 and ``cpu``), as the runner
    resolves them, or ``"per file"`` when the files differ."""
    import dataclasses

    configs = [dict(c or {}) for c in configs]
    seed = options.seed if options.seed is not None else _one({c.get("seed", 0) for c in configs}, 0)
    device = options.device or _one({c.get("device", "cpu") for c in configs}, "cpu")
    meta = collect(seed=seed, device=device, threads=options.threads, files=paths, started=started)
    return dataclasses.replace(report, metadata=meta)
