"""What the watch raises, warns with, and hooks in with (kept apart from the step clock)."""

from __future__ import annotations

import functools
from typing import Any, Callable

from nndiag.watch.timeline import Event


class TrainingStopped(RuntimeError):
    """Raised in a plain loop when a check whose policy is ``stop`` fails. ``event`` says what,
    where and when; ``report`` is the watch's report up to that point."""

    def __init__(self, event: Event, report: Any = None) -> None:
        super().__init__(f"nndiag.watch stopped training at step {event.step}: {event.message} "
                         f"[{event.check}]")
        self.event = event
        self.report = report


class WatchWarning(UserWarning):
    """A watch verdict at the ``warn`` level, issued as it happens."""


class WatchHook(functools.partial):
    """A hook callable that deep copies as itself, so copying the watched model (the NaN replay, a
    user's EMA copy) does not copy the whole watch; the replay then detaches it from the copy.
    A ``functools.partial`` so that torch calls the watch's method without an extra Python frame
    (the hooks run every step)."""

    __slots__ = ()

    @property
    def fn(self) -> Callable[..., Any]:
        """The wrapped function."""
        return self.func

    def __deepcopy__(self, memo: dict) -> "WatchHook":
        return self

    def __reduce__(self):
        # torch.save(model) during a watch pickles the module's hook dicts: without this the whole
        # watch (timeline, optimizer, the last batch) went into the checkpoint, and the loaded
        # model fed a dead copy of it every forward. It is saved as a hook that does nothing.
        return (_inert, ())


def inert_hook(*args: Any, **kwargs: Any) -> None:
    """What a watch hook is in a model pickled during the watch: it does nothing (returns None,
    so the module's inputs and outputs stay as they are)."""
    return None


def _inert() -> Callable[..., None]:
    return inert_hook
