"""A progress display on stderr for runs that take more than a couple of seconds.

tqdm's ``delay`` keeps short runs silent; nothing is shown when stderr is not a terminal (CI logs,
pipes), so machine-read output stays clean.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

SHOW_AFTER_SECONDS = 2.0


@contextmanager
def progress_display(quiet: bool = False) -> Iterator[Callable[[str, str, int, int], None] | None]:
    """Yield a callback ``(subject, probe_id, index, total)`` for the runner, or None when silent."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from tqdm import tqdm

    bars: dict[str, tqdm] = {}
    started = time.monotonic()

    def update(subject: str, probe_id: str, index: int, total: int) -> None:
        bar = bars.get(subject)
        if bar is None:
            for old in bars.values():
                old.close()
            bar = bars[subject] = tqdm(total=total, desc=subject, unit="probe", file=sys.stderr,
                                       delay=SHOW_AFTER_SECONDS, leave=False)
        bar.n = index
        bar.set_postfix_str(probe_id, refresh=False)
        # Draw only once the run is older than the delay: short runs print nothing at all.
        if time.monotonic() - started >= SHOW_AFTER_SECONDS:
            bar.refresh()

    try:
        yield update
    finally:
        for bar in bars.values():
            bar.close()
