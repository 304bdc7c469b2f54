"""A progress display on stderr for runs that take more than a couple of seconds.

One line per subject: how many probes are done, the probe running now, how long it has run, and
its current step when the running code reports one (:func:`note_step`, e.g. ``"step 40/100"`` from
a long sweep). A ticker refreshes the line twice a second, so a long probe never looks frozen, and
there is no time estimate: probes differ too much in cost for a count-based ETA to mean anything
(it said 2 s for a 17 s probe). The line is erased when the run ends, so the summary table starts
on a clean line. Short runs (under :data:`SHOW_AFTER_SECONDS`) print nothing, and nothing is shown
when stderr is not a terminal (CI logs, pipes), so machine-read output stays clean.
"""

from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator, TextIO

SHOW_AFTER_SECONDS = 2.0
TICK_SECONDS = 0.5

from nndiag import activity
from nndiag.activity import note_step  # noqa: F401 - the public name, kept where docs point



class ProgressLine:
    """The one status line: drawn on ``stream`` by a ticker thread, erased by :meth:`close`."""

    def __init__(self, stream: TextIO, width: int = 100) -> None:
        self.stream = stream
        self.width = width
        self.started = time.monotonic()
        self.subject = ""
        self.probe = ""
        self.index = 0
        self.total = 0
        self.probe_started = self.started
        self.drawn = 0  # characters on screen now (0: nothing to erase)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name="nndiag-progress", daemon=True)
        self._thread.start()

    def update(self, subject: str, probe_id: str, index: int, total: int) -> None:
        """The runner starts probe ``index`` (0-based) of ``total`` on ``subject``."""
        with self._lock:
            self.subject, self.probe, self.index, self.total = subject, probe_id, index, total
            self.probe_started = time.monotonic()
            activity.reset()
        self.draw()

    def text(self) -> str:
        """The line as it would be drawn now."""
        now = time.monotonic()
        step = f", {activity.current()}" if activity.current() else ""
        line = (f"{self.subject}: {self.index}/{self.total} probes done; {self.probe} "
                f"({now - self.probe_started:.0f} s{step})")
        return line[: self.width - 1]

    def draw(self) -> None:
        """Draw the line (only once the run is older than the delay)."""
        if time.monotonic() - self.started < SHOW_AFTER_SECONDS or not self.probe:
            return
        with self._lock:
            line = self.text()
            pad = max(0, self.drawn - len(line))
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
            self.drawn = len(line)

    def _tick(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            self.draw()

    def close(self) -> None:
        """Stop the ticker and erase the line."""
        self._stop.set()
        self._thread.join(timeout=2)
        with self._lock:
            if self.drawn:
                self.stream.write("\r" + " " * self.drawn + "\r")
                self.stream.flush()
                self.drawn = 0
        activity.reset()


@contextmanager
def progress_display(quiet: bool = False, stream: TextIO | None = None,
                     force: bool = False) -> Iterator[Callable[[str, str, int, int], None] | None]:
    """Yield a callback ``(subject, probe_id, index, total)`` for the runner, or None when silent
    (``quiet``, or ``stream``, default stderr, is not a terminal and ``force`` is not set)."""
    stream = stream if stream is not None else sys.stderr
    if quiet or not (force or stream.isatty()):
        yield None
        return
    import shutil

    line = ProgressLine(stream, width=shutil.get_terminal_size((100, 24)).columns)
    try:
        yield line.update
    finally:
        line.close()
