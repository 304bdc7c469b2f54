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

    @classmethod
    def capture(cls) -> "RngState":
        """Snapshot the generators now."""
        cuda = None
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            cuda = tuple(torch.cuda.get_rng_state_all())
        return cls(random.getstate(), np.random.get_state(), torch.get_rng_state(), cuda)

    def restore(self) -> None:
        """Put every generator back exactly as captured."""
        random.setstate(self.python)
        np.random.set_state(self.numpy)
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None:
            torch.cuda.set_rng_state_all(list(self.torch_cuda))


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
