"""The host-side record of a watched run: per-step series, per-layer series and LR events.

Filled once per log interval from the device buffers (:mod:`nndiag.watch.recorder`) and on sample
steps (:mod:`nndiag.watch.sampler`); the checks only read it. ``nan`` marks a step with no value
(a step the GradScaler skipped has no gradient norm; a step without ``w.step(loss)`` no loss).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

NAN = float("nan")


@dataclass
class Event:
    """One thing a check saw: severity (warn/fail/pass for notes), step, place and cause."""

    check: str
    severity: str
    step: int
    where: str
    message: str
    value: float | None = None
    limit: float | None = None
    metric: str = ""


@dataclass
class Timeline:
    """Everything measured so far, step-indexed from 0."""

    loss: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    has_loss: list[bool] = field(default_factory=list)  # w.step(loss) gave this step's loss
    lr: list[float] = field(default_factory=list)
    skipped: list[bool] = field(default_factory=list)  # no optimizer.step() ran at this step
    measured: list[bool] = field(default_factory=list)  # full gradient norms taken at this step
    layer_grad: dict[str, list[float]] = field(default_factory=dict)  # per step
    samples: list[int] = field(default_factory=list)  # steps at which per-layer samples were taken
    dead: dict[str, list[float]] = field(default_factory=dict)  # per sample; nan when not seen
    observations: dict[str, int] = field(default_factory=dict)  # ReLU site -> inputs per sample
    saturated: dict[str, list[float]] = field(default_factory=dict)
    update_ratio: dict[str, list[float]] = field(default_factory=dict)  # per sample
    scale: list[tuple[int, float]] = field(default_factory=list)  # (step, GradScaler scale)
    never_in_optimizer: list[str] = field(default_factory=list)
    scheduler: str = ""  # the watched LR scheduler's class, named in LR events

    @property
    def steps(self) -> int:
        """Steps recorded so far."""
        return len(self.loss)

    def lr_events(self, ratio: float = 1.5) -> list[tuple[int, str]]:
        """Where the learning rate changed course: jumps by more than ``ratio`` in one step, the
        end of a warm-up (rising, then not), and the start of a decay (flat, then falling)."""
        out: list[tuple[int, str]] = []
        lrs = self.lr
        rising = False
        for i in range(1, len(lrs)):
            a, b = lrs[i - 1], lrs[i]
            if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
                continue
            if b > a * ratio or a > b * ratio:
                out.append((i, f"the learning rate {'jumped' if b > a else 'dropped'} from {a:.3g} "
                               f"to {b:.3g} at step {i}"))
            elif b > a * (1 + 1e-9):
                rising = True
            elif rising and b <= a:
                out.append((i, f"the LR warm-up ended at step {i} (lr {a:.3g})"))
                rising = False
        return out

    def nearest_lr_event(self, step: int) -> str:
        """The LR event nearest before ``step`` (or just after it), as a phrase; '' when none."""
        events = self.lr_events()
        before = [e for e in events if e[0] <= step]
        found = before[-1][1] if before else (events[0][1] if events else "")
        return f"{found} (by {self.scheduler})" if found and self.scheduler else found
