"""One check as one rank of a ``torch.distributed`` job: the process group, the gather, the exit.

- :func:`join_launched_job` / :func:`leave_launched_job`: in a process a launcher started
  (``torchrun`` sets ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) that has no process
  group yet, the check runs inside one (gloo; ``cpu:gloo,cuda:nccl`` when the probes run on CUDA),
  destroyed at the end, once the ranks agreed on the exit status. The CLI calls them in the
  process that runs the probes (its isolated child), so a model file sees its rank at import.
- :func:`on_every_rank`: run the check on this rank, gather every rank's outcome and return the
  merged report (:mod:`nndiag.rank_merge`), the same on every rank, so every rank computes the same
  exit status. Outside a job of more than one rank it only runs the check.

Nothing waits forever: the gather starts with a monitored barrier (gloo) whose timeout
(``NNDIAG_RANK_TIMEOUT`` seconds, default 600) bounds the wait for a rank that crashed or hangs,
and rank 0 then names the missing ranks. After a failed gather no rank calls another collective.
"""

from __future__ import annotations

import os
import re
import sys
from datetime import timedelta
from typing import Any, Callable

from nndiag.errors import NndiagError, UsageError
from nndiag.rank_merge import MISSING, Outcome, merge_ranks, rank_list
from nndiag.report import Report

TIMEOUT_ENV = "NNDIAG_RANK_TIMEOUT"
# A hung rank is a rank that does not finish a check the others finished; the ranks do the same
# work, so ten minutes is generous for their spread and still ends a hung job (torch's own default
# for a collective is 30 minutes).
DEFAULT_TIMEOUT = 600.0

_state: dict[str, Any] = {"broken": False, "gloo": None, "saved_init": None}


def gather_timeout() -> float:
    """Seconds a rank waits for the others at the gather (``NNDIAG_RANK_TIMEOUT``, default 600)."""
    raw = os.environ.get(TIMEOUT_ENV, "")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise UsageError(f"{TIMEOUT_ENV}={raw!r} is not a number of seconds above 0.",
                         hint=f"Set e.g. {TIMEOUT_ENV}=600, or unset it for the default.")
    return value


def join_launched_job(device: str | None = None) -> bool:
    """Init this rank's process group when a launcher started the process and none exists yet;
    True when it did (:func:`leave_launched_job` then destroys it). A model file imported
    afterwards sees its rank (``dist.get_rank()``, ``RANK``), and its own ``init_process_group``
    call does nothing while nndiag's group exists."""
    from nndiag import ranks

    if not ranks.launched_by_torchrun() or _state.get("saved_init") is not None:
        return False
    import torch
    import torch.distributed as dist

    if dist.is_initialized():  # a wrapper made one: use it, and leave it to its owner
        return False
    backend = "gloo"
    if device in ("cuda", "auto") and torch.cuda.is_available():
        backend = "cpu:gloo,cuda:nccl"  # the probes on the GPU, the gather on the CPU
        # one GPU per local rank; ranks share GPUs when there are fewer (nndiag itself runs no
        # collective on them, so NCCL's one-rank-per-GPU rule is never reached)
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
    try:
        dist.init_process_group(backend, timeout=timedelta(seconds=gather_timeout()))
    except (RuntimeError, ValueError) as exc:  # DistStoreError, a bad MASTER_ADDR/PORT, ...
        raise UsageError(f"could not join the launcher's process group ({backend}, MASTER_ADDR="
                         f"{os.environ.get('MASTER_ADDR')}, MASTER_PORT={os.environ.get('MASTER_PORT')}): "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}.",
                         hint="Start every rank with the same launcher command (torchrun --nproc_per_node N "
                         "-m nndiag check FILE), or run nndiag check without a launcher.") from exc
    _state.update(broken=False, gloo=None, saved_init=_tolerate_user_init(dist))
    return True


def leave_launched_job(code: int) -> int:
    """The exit status every rank ends with (rank 0's: it printed the report), agreed once rank 0
    has printed, so no rank exits first (torchrun tears the whole job down at the first rank that
    exits non-zero); then the group :func:`join_launched_job` made is destroyed. ``code`` itself
    when this process joined no job."""
    saved = _state.get("saved_init")
    if saved is None:
        return code
    import torch.distributed as dist

    try:
        return agreed_exit_code(code)
    finally:
        dist.init_process_group = saved  # type: ignore[assignment]
        _state["saved_init"] = None
        if dist.is_initialized():
            dist.destroy_process_group()


def _tolerate_user_init(dist: Any) -> Callable[..., Any]:
    """While nndiag's group exists, a model file's own ``init_process_group`` call does nothing
    (the group it asks for is already there); returns the original function."""
    saved = dist.init_process_group

    def init_process_group(*args: Any, **kwargs: Any) -> None:
        if not dist.is_initialized():
            saved(*args, **kwargs)

    dist.init_process_group = init_process_group
    return saved


def agreed_exit_code(code: int) -> int:
    """Rank 0's exit status, on every rank (this rank's own when the ranks cannot agree)."""
    from nndiag import ranks

    if not ranks.is_distributed() or _state["broken"]:
        return code
    import torch.distributed as dist

    sys.stdout.flush()
    sys.stderr.flush()
    codes: list[Any] = [None] * dist.get_world_size()
    try:
        group = _object_group()
        dist.monitored_barrier(group=group, timeout=timedelta(seconds=gather_timeout()), wait_all_ranks=True)
        dist.all_gather_object(codes, code, group=group)
    except RuntimeError:
        _state["broken"] = True
        return code
    return int(codes[0])


def on_every_rank(run: Callable[[], Report]) -> Report:
    """``run()`` on this rank, then the merged report of every rank (see the module doc).

    An :class:`NndiagError` on this rank is handed to the others as its outcome; when every rank
    failed with the same error it is raised again, as one process would."""
    from nndiag import ranks

    if not ranks.is_distributed():
        return run()
    error: NndiagError | None = None
    _state["broken"] = False
    try:
        local: Report | str = run()
    except NndiagError as exc:
        error, local = exc, str(exc)
    outcomes, reason = gather(local)
    if error is not None and all(o == local for o in outcomes):
        raise error
    return merge_ranks(outcomes, reason)


def gather(local: Report | str) -> tuple[list[Outcome], str]:
    """Every rank's outcome (this rank's own object for itself), and the sentence for the ranks
    that did not report. Reports cross ranks as their JSON form: plain data, never tensors."""
    import torch.distributed as dist

    me, world = dist.get_rank(), dist.get_world_size()
    timeout = gather_timeout()
    outcomes: list[Outcome] = [None] * world
    outcomes[me] = local
    try:
        group = _object_group()
        dist.monitored_barrier(group=group, timeout=timedelta(seconds=timeout), wait_all_ranks=True)
    except RuntimeError as exc:  # a rank crashed or hangs: no more collectives from here on
        _state["broken"] = True
        return _without_gather(outcomes, me, str(exc), timeout)
    payloads: list[Any] = [None] * world
    dist.all_gather_object(payloads, local.to_dict() if isinstance(local, Report) else local, group=group)
    for r, p in enumerate(payloads):
        if r != me:
            outcomes[r] = Report.from_dict(p) if isinstance(p, dict) else p
    return outcomes, f"did not report, {MISSING}"


_MISSING = re.compile(r"Ranks? ([\d, ]+) failed to pass monitoredBarrier")


def _without_gather(outcomes: list[Outcome], me: int, error: str, timeout: float) -> tuple[list[Outcome], str]:
    """The outcomes when the barrier failed: rank 0 learns which ranks never came (gloo names them);
    the ranks that did come but could not be gathered say so."""
    late = f"did not reach the gather within {timeout:g} s ({TIMEOUT_ENV})"
    if me != 0:
        return outcomes, (f"could not be gathered: rank 0 did not complete the gather within {timeout:g} s "
                          "(a rank did not reach it; rank 0's report names it).")
    found = _MISSING.search(error)
    missing = {int(r) for r in re.findall(r"\d+", found.group(1))} if found else set(range(1, len(outcomes)))
    for r in range(1, len(outcomes)):
        if r not in missing:
            outcomes[r] = f"its report could not be gathered because {rank_list(missing)} {late}"
    return outcomes, f"{late}, {MISSING}"


def _object_group() -> Any:
    """The group the reports travel on: the default one when it has a CPU backend (gloo), else a
    gloo group made once for it (NCCL moves only GPU tensors and has no monitored barrier)."""
    import torch.distributed as dist

    if "gloo" in str(dist.get_backend()):
        return None
    world, group = _state["gloo"] or (None, None)
    if world is not dist.group.WORLD:  # none yet, or made for a default group since destroyed
        group = dist.new_group(backend="gloo", timeout=timedelta(seconds=gather_timeout()))
        _state["gloo"] = (dist.group.WORLD, group)
    return group
