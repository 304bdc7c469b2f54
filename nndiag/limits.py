"""Limits a check runs under: a per-probe time limit, a memory estimate, and sane settings.

- :func:`time_limit` ends a probe that runs past its budget (a forward that never returns, a
  300M-parameter embedding on CPU) with :class:`ProbeTimeout`; the runner turns it into a ``skip``
  that says what the probe was doing. It is never a ``warn`` or ``fail``: slowness is not a bug in
  the model.
- :func:`estimate_model_bytes` sizes the model without allocating it (built on the ``meta``
  device), so a model that cannot fit is refused with a message before anything is allocated.
- :func:`validate_seed` and :func:`validate_probe_config` reject values that would otherwise crash
  deep inside torch (a seed beyond 64 bits) or be accepted silently (negative step counts).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

from nndiag.errors import UsageError

DEFAULT_TIME_LIMIT = 300.0  # seconds per probe; the slowest built-in probe takes ~20 s on the CNN
SEED_MIN, SEED_MAX = -(2**63), 2**64 - 1  # what torch.manual_seed accepts

# How many model-sized buffers a probe holds at once: the model itself, its gradients, and for the
# training probes an optimizer's state (Adam: two) and a snapshot of the parameters to compare.
TRAINING_PROBES = {"gradients", "overfit", "lr-range", "updates", "nan"}
COPIES_TRAINING = 5
COPIES_FORWARD = 2
MIN_COUNTS = {("lr-range", "num_it"): 2}  # a sweep needs two points to have a slope


class ProbeTimeout(BaseException):
    """Raised in the main thread when a probe runs past its time limit.

    A BaseException, so the user's own ``except Exception`` around a forward does not swallow it.
    """


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise :class:`ProbeTimeout` inside the block once ``seconds`` have passed.

    Uses SIGALRM, so it needs the main thread of a POSIX process; elsewhere (a thread, Windows) the
    block runs without a limit. A C call that does not return to Python (one huge matmul) is
    interrupted when it returns.
    """
    usable = (seconds and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return
    # Someone else's alarm (pytest-timeout's signal method, the user's own) may be pending: it
    # keeps its deadline and its handler, and is re-armed afterwards.
    start = time.monotonic()
    outer_left, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    outer = {"pending": outer_left > 0}
    previous = signal.getsignal(signal.SIGALRM)

    def _expired(signum, frame):
        elapsed = time.monotonic() - start
        if outer["pending"] and elapsed < seconds and callable(previous):
            outer["pending"] = False
            signal.setitimer(signal.ITIMER_REAL, max(seconds - elapsed, 1e-3))
            previous(signum, frame)  # the outer deadline came first: its handler decides
            return
        raise ProbeTimeout()

    signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, min(outer_left, seconds) if outer["pending"] else float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer["pending"]:
            left = outer_left - (time.monotonic() - start)
            signal.setitimer(signal.ITIMER_REAL, max(left, 1e-3), outer_interval)


def validate_time_limit(value: Any, source: str = "--time-limit") -> float | None:
    """The time limit in seconds (None or 0: no limit); UsageError for anything else."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise UsageError(f"{source} must be a number of seconds, got {value!r}.",
                             hint="Write e.g. --time-limit 300 (0 turns the limit off).") from None
    if value < 0:
        raise UsageError(f"{source} must be 0 (no limit) or a positive number of seconds, got {value!r}.",
                         hint="Write e.g. --time-limit 300.")
    return float(value) or None


def validate_seed(value: Any, source: str = "--seed") -> int:
    """The seed as an int that torch, numpy and random all accept; UsageError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        else:
            raise UsageError(f"{source} must be an integer, got {value!r}.", hint="Write e.g. seed 0.")
    if not SEED_MIN <= value <= SEED_MAX:
        raise UsageError(f"{source} {value} does not fit in 64 bits (torch accepts -2**63 to 2**64-1).",
                         hint="Use a smaller seed, e.g. 0 or 1234.")
    return value


def validate_probe_config(probe_id: str, config: Any) -> None:
    """UsageError when a count setting (a step or sample count) is not a positive integer, or a
    number setting is not a number."""
    if not dataclasses.is_dataclass(config):
        return
    defaults = type(config)()
    for f in dataclasses.fields(config):
        value, default = getattr(config, f.name), getattr(defaults, f.name)
        name = f"{probe_id}.{f.name}"
        if isinstance(default, bool) or default is None:
            continue
        if isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise UsageError(f"Setting {name}={value!r} is not an int.", hint=f"The default is {default!r}.")
            low = MIN_COUNTS.get((probe_id, f.name), 1 if default > 0 else None)
            if low is not None and value < low:
                raise UsageError(f"Setting {name}={value!r} must be at least {low}.",
                                 hint=f"The default is {default!r}.")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UsageError(f"Setting {name}={value!r} is not a number.", hint=f"The default is {default!r}.")


# ---- memory --------------------------------------------------------------------------------
def estimate_model_bytes(subject: Any) -> int | None:
    """Bytes of the model's parameters and buffers, without allocating them; None if unknown.

    A given ``model`` instance is measured as it is. A ``build_model`` is called once on the
    ``meta`` device (shapes only, no memory); a factory that cannot build there gives None.
    """
    import torch

    from nndiag.seeding import fork_seeded

    model = subject.user_model
    if model is None:
        try:
            with fork_seeded(0), torch.device("meta"):
                model = subject.model_factory()
        except BaseException:  # noqa: BLE001 - any failure here is reported later, with context
            return None
    if not isinstance(model, torch.nn.Module):
        return None
    total = 0
    seen: set[int] = set()
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) in seen or isinstance(t, torch.nn.parameter.UninitializedTensorMixin):
            continue
        seen.add(id(t))
        total += t.numel() * t.element_size()
    return total


def available_bytes(device: Any) -> int | None:
    """Free memory on ``device`` (GPU: torch's count; CPU: MemAvailable), or None if unknown."""
    override = os.environ.get("NNDIAG_MEMORY_BYTES")  # for tests and for sharing a machine
    if override:
        return int(float(override))
    if str(device).startswith("cuda"):
        import torch

        try:
            return int(torch.cuda.mem_get_info(torch.device(device))[0])
        except Exception:  # noqa: BLE001
            return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def copies_needed(probe_id: str | None) -> int:
    """Model-sized buffers the probe holds at once (the whole check: the smallest probe's)."""
    if probe_id is None:
        return COPIES_FORWARD
    return COPIES_TRAINING if probe_id in TRAINING_PROBES else COPIES_FORWARD


def memory_refusal(model_bytes: int | None, free: int | None, probe_id: str | None) -> str:
    """A message when ``probe_id`` (None: any probe) would not fit in ``free`` bytes, else ''."""
    if model_bytes is None or free is None:
        return ""
    need = model_bytes * copies_needed(probe_id)
    if need <= free:
        return ""
    what = f"the {probe_id} probe" if probe_id else "even the lightest probe"
    return (f"The model's parameters and buffers take {_size(model_bytes)}; {what} holds about "
            f"{copies_needed(probe_id)} copies ({_size(need)}) and only {_size(free)} of memory is "
            "free here. Check a smaller configuration of the model, or run on a machine (or GPU) "
            "with more memory.")


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
