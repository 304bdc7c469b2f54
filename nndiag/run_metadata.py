"""Run metadata: what a report was made with, so a CI artifact read weeks later can be reproduced.

:func:`collect` returns a plain dict (``Report.metadata``, the JSON report's ``run`` object):

``nndiag``, ``torch``, ``python`` (versions), ``platform``, ``device``, ``threads``, ``seed``,
``command`` (the command line, as a list), ``started`` (UTC, ISO 8601), ``hostname`` and
``files``: each checked model file's path and the SHA-256 of its bytes.

``seed`` and ``device`` are the values asked for (``--seed``/``--device`` or ``check(seed=...)``);
when none was given, ``seed``/``device`` say ``None`` and each file's ``nndiag_config`` (else 0 and
``cpu``) applied, as the runner resolves them. ``threads`` is ``--threads`` when given, else torch's
own setting at the time of the run. No torch import at the top: the pytest plugin imports the report
module, and torch is only read here when it is already loaded.
"""

from __future__ import annotations

import hashlib
import platform
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

KEYS: tuple[str, ...] = ("nndiag", "torch", "python", "platform", "device", "threads", "seed",
                         "command", "started", "hostname", "files")


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
        "command": list(sys.argv if argv is None else argv),
        "started": started or now_utc(),
        "hostname": socket.gethostname(),
        "files": file_rows,
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
    return ", ".join(parts)
