"""User-facing error types.

Every error a user can cause carries a message that names the problem and the fix in one or two
sentences (contract §4). The CLI prints ``str(error)``; the full traceback only with ``--traceback``.
"""

from __future__ import annotations


class NndiagError(Exception):
    """Base class of the errors nndiag reports to users as a message, not a traceback."""

    def __init__(self, message: str, *, hint: str = "") -> None:
        self.message = message
        self.hint = hint
        super().__init__(f"{message} {hint}".strip())


class UsageError(NndiagError):
    """A bad option or setting (unknown probe id, unknown config key): exit status 2."""


class ModelFileError(NndiagError):
    """The model file cannot be used at all (missing, not Python, raises on import, lacks names).

    Ends the run for that subject with exit status 2.
    """


class SubjectError(NndiagError):
    """The user's objects fail while a probe uses them (forward raises, loss not scalar, ...).

    The probe that hit it reports status ``error`` with this message.
    """


class ProbeSkipped(Exception):
    """Raised inside a probe to end it with status ``skip`` and the given reason."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


MESSAGE_LIMIT = 2000  # characters of a user exception kept in a message; beyond, --traceback has it


def describe_exception(exc: BaseException) -> str:
    """``TypeName: message`` of an exception raised by user code, on one line.

    The message is kept whole (its lines joined), so the hint a data loader puts at the end of a
    long message still reaches the user; only a message longer than :data:`MESSAGE_LIMIT` is
    shortened, at a word boundary, saying so.
    """
    text = " ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    if len(text) > MESSAGE_LIMIT:
        cut = text.rfind(" ", 0, MESSAGE_LIMIT)
        text = text[: cut if cut > 0 else MESSAGE_LIMIT] + " [...; --traceback shows the whole message]"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
