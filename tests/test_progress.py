"""The progress display: silent unless stderr is a terminal, and only after a couple of seconds."""

from __future__ import annotations

import io

from nndiag import progress


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_silent_when_stderr_is_not_a_terminal(monkeypatch):
    monkeypatch.setattr(progress.sys, "stderr", io.StringIO())
    with progress.progress_display() as update:
        assert update is None


def test_silent_when_quiet(monkeypatch):
    monkeypatch.setattr(progress.sys, "stderr", FakeTTY())
    with progress.progress_display(quiet=True) as update:
        assert update is None


def test_shown_on_a_terminal_after_the_delay(monkeypatch):
    fake = FakeTTY()
    monkeypatch.setattr(progress.sys, "stderr", fake)
    monkeypatch.setattr(progress, "SHOW_AFTER_SECONDS", 0.0)
    with progress.progress_display() as update:
        assert callable(update)
        update("model.py", "params", 0, 3)
        update("model.py", "nan", 1, 3)
    assert "model.py" in fake.getvalue() and "nan" in fake.getvalue()


def test_short_runs_print_nothing(monkeypatch):
    fake = FakeTTY()
    monkeypatch.setattr(progress.sys, "stderr", fake)
    with progress.progress_display() as update:  # default delay: 2 s
        update("model.py", "params", 0, 2)
    assert fake.getvalue().strip() == ""
