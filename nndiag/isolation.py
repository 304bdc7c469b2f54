"""Keeping the user's process as it was: global state put back, and early exits made visible.

Two layers (contract §4, issue 14):

- In process: :func:`preserved_process_state` snapshots every global a model file or a probe may
  change (random generators and ``torch.initial_seed()``, default dtype, grad and anomaly modes,
  torch threads, working directory, ``sys.path``, ``sys.argv``) and puts it back; while user code
  runs, :func:`exits_raise` turns ``os._exit`` into an exception so it cannot end the run with a
  success status.
- Out of process: :func:`run_cli_isolated` runs ``nndiag check`` in a child process. What the child
  cannot survive (a signal, a segfault in a C extension, a C-level ``exit(0)``) then ends in a
  message and exit status 2 instead of a silent status the parent never chose. This module must
  not import torch at the top: the CLI parent only starts the child.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

CHILD_ENV = "NNDIAG_STATUS_FILE"  # set in the child: where it writes its stages and exit status
ISOLATE_ENV = "NNDIAG_ISOLATE"  # "0" runs the check in the CLI process itself


class ProcessExit(BaseException):
    """Raised instead of ending the process when user code calls ``os._exit(code)``.

    A BaseException, so the user's own ``except Exception`` does not swallow it.
    """

    def __init__(self, code: Any, how: str = "os._exit") -> None:
        self.code = code
        self.how = how
        super().__init__(f"{how}({code})")


@contextmanager
def exits_raise() -> Iterator[None]:
    """While the block runs, ``os._exit`` and ``posix._exit`` raise :class:`ProcessExit`."""
    import posix

    saved = (os._exit, posix._exit)
    here = os.getpid()

    def _exit(code=0):
        if os.getpid() != here:  # a forked child (DataLoader worker, multiprocessing) really exits
            saved[1](code)
        raise ProcessExit(code, "os._exit")

    os._exit = posix._exit = _exit  # type: ignore[assignment]
    try:
        yield
    finally:
        os._exit, posix._exit = saved  # type: ignore[misc]


@dataclass
class ProcessState:
    """A snapshot of the process-wide state a model file or a probe might change."""

    cwd: str
    path: list[str]
    argv: list[str]
    rng: Any
    torch_state: dict[str, Any] | None

    @classmethod
    def capture(cls) -> "ProcessState":
        """Snapshot now (torch's part only when torch is already imported)."""
        torch_state = None
        rng = None
        if "torch" in sys.modules:
            import torch

            from nndiag.seeding import RngState

            rng = RngState.capture()
            torch_state = {
                "dtype": torch.get_default_dtype(),
                "grad": torch.is_grad_enabled(),
                "anomaly": (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
                "threads": torch.get_num_threads(),
            }
        else:
            import random

            rng = random.getstate()
        return cls(os.getcwd(), list(sys.path), list(sys.argv), rng, torch_state)

    def restore(self) -> None:
        """Put everything back as captured."""
        try:
            os.chdir(self.cwd)
        except OSError:  # the folder was removed meanwhile; nothing better to go back to
            pass
        sys.path[:] = self.path
        sys.argv[:] = self.argv
        if self.torch_state is None:
            if not isinstance(self.rng, tuple):
                return
            import random

            random.setstate(self.rng)
            return
        import torch

        self.rng.restore()
        s = self.torch_state
        torch.set_default_dtype(s["dtype"])
        torch.set_grad_enabled(s["grad"])
        torch.set_anomaly_enabled(*s["anomaly"])
        if torch.get_num_threads() != s["threads"]:
            torch.set_num_threads(s["threads"])


@contextmanager
def preserved_process_state() -> Iterator[None]:
    """Run the block, then restore the process-wide state it may have changed."""
    state = ProcessState.capture()
    try:
        yield
    finally:
        state.restore()


# ---- the child process ----------------------------------------------------------------------
def note_stage(stage: str) -> None:
    """In the child, record what the check is doing, so an early exit can say where it happened."""
    path = os.environ.get(CHILD_ENV)
    if not path:
        return
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"stage {stage}\n")
    except OSError:
        pass


def note_exit(code: int) -> None:
    """In the child, record the exit status it is about to end with (the parent checks it)."""
    path = os.environ.get(CHILD_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"exit {code}\n")


def should_isolate() -> bool:
    """True in the CLI parent: not already the child, not switched off, and real output files.

    Under an in-process runner (click's CliRunner) stdout has no file descriptor to hand to a
    child, so the check runs in the same process there.
    """
    if os.environ.get(CHILD_ENV) or os.environ.get(ISOLATE_ENV, "1") == "0":
        return False
    try:
        sys.stdout.fileno()
        sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return False
    return True


def run_cli_isolated(args: list[str]) -> int:
    """Run ``nndiag <args>`` in a child process; its exit status, or 2 with a message when the
    child ended without choosing one (a signal, a crash, ``exit()`` from C code)."""
    fd, status_file = tempfile.mkstemp(prefix="nndiag-status-", suffix=".txt")
    os.close(fd)
    env = {**os.environ, CHILD_ENV: status_file}
    try:
        try:
            proc = subprocess.Popen([sys.executable, "-m", "nndiag.cli", *args], env=env)
            rc = proc.wait()
        except KeyboardInterrupt:  # the terminal sent SIGINT to the child too
            rc = proc.wait()
            return 130 if rc in (0, 1, 2) else rc
        with open(status_file, encoding="utf-8") as f:
            lines = f.read().splitlines()
    finally:
        try:
            os.unlink(status_file)
        except OSError:
            pass
    chosen = [int(line.split()[1]) for line in lines if line.startswith("exit ")]
    if chosen and chosen[-1] == rc:
        return rc
    if chosen and rc < 0:
        # The check finished, printed its report and chose its status; the signal came while the
        # interpreter shut down (a C++ thread of a gloo process group torn down under load ends
        # in std::terminate, SIGABRT). The verdict stands: keep the chosen status, and say so.
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        sys.stderr.write(f"nndiag: note: the process ended with {name} while shutting down, after "
                         f"the report; the exit status is the check's own ({chosen[-1]}).\n")
        sys.stderr.flush()
        return chosen[-1]
    stages = [line[len("stage "):] for line in lines if line.startswith("stage ")]
    from nndiag.ranks import launched_by_torchrun

    # one rank of a torchrun job: say which (its end stops the job, docs/distributed.md)
    where = f"on rank {os.environ['RANK']}: " if launched_by_torchrun() else ""
    sys.stderr.write("nndiag: error: " + where + early_exit_message(rc, stages[-1] if stages else "") + "\n")
    sys.stderr.flush()
    return 2


def early_exit_message(rc: int, stage: str) -> str:
    """The sentence for a child that ended without a report: how it ended and where."""
    where = f" while {stage}" if stage else ""
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        what = {"SIGSEGV": "a crash (segmentation fault) in C code, e.g. an extension module or an "
                           "out-of-bounds index in a custom op",
                "SIGABRT": "an abort in C code (a failed assertion in an extension)",
                "SIGKILL": "a kill, often the out-of-memory killer",
                "SIGBUS": "a crash in C code (bus error)"}.get(name, "a signal")
        return (f"the model file ended the process with {name} ({what}){where}, so nothing was "
                "reported. Run the file's code on its own (python FILE) to find the line, or "
                "check it with --probe to narrow it down.")
    if rc == 0:
        return (f"the model file ended the process early with exit status 0{where} (os._exit, or "
                "exit() from C code), so nothing was reported. Remove the exit from the code nndiag "
                "runs (import, build_model, the data, the loss), e.g. put script code under "
                "`if __name__ == '__main__':`.")
    return (f"the check ended early with exit status {rc}{where} before reporting anything: the "
            "model file's code ended the process (os._exit, exit() from C code), or nndiag itself "
            "crashed (its traceback is above; please report it).")
