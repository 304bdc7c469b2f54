"""Seeding and restoring random number generators (torch CPU and CUDA, numpy, random).

The runner seeds every generator before each probe so a probe's result does not depend on which
probes ran before it, and restores the user's generators afterwards (contract §4).
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed python's ``random``, numpy's global generator and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


@dataclass(frozen=True)
class RngState:
    """A snapshot of every global generator nndiag may touch."""

    python: Any
    numpy: Any
    torch_cpu: torch.Tensor
    torch_cuda: tuple[torch.Tensor, ...] | None
    #: CUDA not initialised yet: the seeds torch queued for it (``torch.manual_seed`` before CUDA
    #: was used), applied when it initialises. A model file's import or a probe that seeds torch
    #: replaces them, so they are part of the user's state too.
    cuda_queued: tuple | None = None

    @classmethod
    def capture(cls) -> "RngState":
        """Snapshot the generators now."""
        cuda, queued = None, None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = tuple(torch.cuda.get_rng_state_all())
        else:
            queued = _queued_cuda_seeds()
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda, queued)

    def restore(self) -> None:
        """Put every generator back exactly as captured."""
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None:
            torch.cuda.set_rng_state_all(list(self.torch_cuda))
        elif self.cuda_queued is not None:
            _restore_queued_cuda_seeds(self.cuda_queued)


# torch keeps the seeds asked for before CUDA is initialised in a private tracker
# (torch.cuda._lazy_seed_tracker: the latest manual_seed and manual_seed_all callbacks, in order).
_DEFAULT_CUDA_SEED = 67280421310721  # a new CUDA generator's seed (c10 default_rng_seed_val)


def _queued_cuda_seeds() -> tuple | None:
    """The CUDA seeds torch has queued (None when this torch keeps no such tracker)."""
    tracker = getattr(torch.cuda, "_lazy_seed_tracker", None)
    try:
        return (tracker.manual_seed_all_cb, tracker.manual_seed_cb, list(tracker.call_order))
    except AttributeError:
        return None


def _restore_queued_cuda_seeds(queued: tuple) -> None:
    """Put the queued CUDA seeds back; when CUDA was initialised meanwhile, seed it as the queue
    would have (or to a new generator's default seed when nothing was queued)."""
    tracker = getattr(torch.cuda, "_lazy_seed_tracker", None)
    if tracker is None:
        return
    if not torch.cuda.is_initialized():
        tracker.manual_seed_all_cb, tracker.manual_seed_cb, tracker.call_order = \
            queued[0], queued[1], list(queued[2])
        return
    calls = [c for c in queued[2] if c is not None]
    if not calls:
        torch.cuda.manual_seed_all(_DEFAULT_CUDA_SEED)
    for callback, _ in calls:
        callback()


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the block, then restore every generator to its state before the block."""
    state = RngState.capture()
    try:
        yield
    finally:
        state.restore()


@contextmanager
def fork_seeded(seed: int) -> Iterator[None]:
    """Run the block with every generator seeded to ``seed``, then restore the previous states.

    Used for building models and pulling batches, so each probe sees the same model and data no
    matter what random numbers earlier code drew.
    """
    with preserved_rng():
        seed_everything(seed)
        yield
