"""What the running check is doing right now, for the progress line: a note any layer may set.

The progress display (:mod:`nndiag.progress`, a face-level module) reads it; the training step in
:mod:`nndiag.workbench` and the long loops write it. It lives at the bottom of the layers so that
measuring code can report progress without importing the display. One run at a time per process.
"""

from __future__ import annotations

_NOTE: list[str] = [""]
_STEPS: list[int] = [0]


def note_step(text: str) -> None:
    """Say what the running probe or pass is doing now (``"lr sweep step 40/100"``); shown on the
    progress line until the next note or the next probe. Cheap: one list store, no I/O."""
    _NOTE[0] = text


def count_training_step() -> None:
    """One more training step of the running probe (the Workbench's step calls this)."""
    _STEPS[0] += 1
    _NOTE[0] = f"training step {_STEPS[0]}"


def current() -> str:
    """The latest note ("" when none)."""
    return _NOTE[0]


def reset() -> None:
    """A new probe starts: no note, the step count from 0."""
    _NOTE[0] = ""
    _STEPS[0] = 0
