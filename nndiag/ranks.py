"""Where this process stands in a ``torch.distributed`` job: its rank, the world size, rank 0.

The bottom of the layers, so the watch, the runner and the faces all ask the same question the same
way. ``torch.distributed`` is imported only when a process group may exist: a plain single-process
run (and the CLI's ``--help``) never pays for it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# torchrun, torch.distributed.launch and SLURM-style launchers set these before the script starts
_LAUNCHER_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def _dist() -> Any | None:
    """``torch.distributed`` when it is importable, available and initialised; else None."""
    if "torch" not in sys.modules:  # nothing can have initialised a process group yet
        return None
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        return None
    return dist


def is_distributed() -> bool:
    """True inside an initialised process group of more than one rank."""
    dist = _dist()
    return dist is not None and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the default group (0 when there is no group)."""
    dist = _dist()
    return dist.get_rank() if dist is not None else 0


def world_size() -> int:
    """The number of ranks in the default group (1 when there is no group)."""
    dist = _dist()
    return dist.get_world_size() if dist is not None else 1


def is_rank_zero() -> bool:
    """True on the rank that prints and writes reports (rank 0, or the only process)."""
    return rank() == 0


def launched_by_torchrun(environ: dict[str, str] | None = None) -> bool:
    """True when a launcher set up this process as one rank of a job of more than one
    (``WORLD_SIZE > 1`` with ``RANK`` set), whether or not the process group exists yet."""
    env = os.environ if environ is None else environ
    if not all(k in env for k in ("RANK", "WORLD_SIZE")):
        return False
    try:
        return int(env["WORLD_SIZE"]) > 1
    except ValueError:
        return False


def rank_label(of: int | None = None) -> str:
    """``" on rank 1"`` inside a multi-rank job, ``""`` otherwise: appended to verdict messages."""
    if not is_distributed():
        return ""
    return f" on rank {rank() if of is None else of}"
