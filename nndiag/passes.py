"""Measurement passes, planned before the probes run: each computed once per check.

A pass measures (a training trace, activation statistics); probes judge what it measured. A probe
declares the passes it reads with ``Probe.requires()``: :class:`TrainingPass` and
:class:`ActivationPass` records carrying the parameters it needs. Before the first probe runs, the
runner merges the declarations of the selected probes into a :class:`PassPlan` (the most steps and
samples asked for, the union of levels), and the shared pass functions
(:func:`nndiag.training_trace.shared_training_trace`, :func:`nndiag.activation_trace.activation_trace`)
compute each pass once with the merged parameters. A training trace is then cut back to what the
asking probe declared, so a probe reads the same numbers whichever other probes are selected.

``--set nan.steps=50 --set gradients.steps=10`` therefore trains once, for 50 steps with gradient
statistics for 10; nan reads 50 steps, gradients its 10.

Plain data, no torch: the in-training watch can plan the same passes over a live training step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

#: samples the training pass cycles over: the probe batches holding the first 256 samples (the
#: data and activation probes' count, so in a full check every pass reads the same batches).
TRAINING_SAMPLES = 256


@dataclass(frozen=True)
class TrainingPass:
    """A few training steps of a fresh model: the loss per step, gradient statistics for the first
    ``stats_steps`` steps, and where a value first went non-finite."""

    steps: int
    stats_steps: int
    samples: int = TRAINING_SAMPLES

    @property
    def key(self) -> Any:
        """Requirements with the same key are one pass."""
        return ("training", self.samples)

    def merge(self, other: "TrainingPass") -> "TrainingPass":
        """One pass that serves both: the longer run and the longer statistics."""
        return TrainingPass(max(self.steps, other.steps), max(self.stats_steps, other.stats_steps), self.samples)


@dataclass(frozen=True)
class ActivationPass:
    """One watched forward pass over ``samples`` samples, counting activations at ``levels``.

    Counters are summed over the samples, so passes over different sample counts are different
    passes; the levels of passes over the same samples are united (extra levels add counters and
    change none)."""

    samples: int
    levels: tuple[float, ...] = ()

    @property
    def key(self) -> Any:
        """Requirements with the same key are one pass."""
        return ("activations", self.samples)

    def merge(self, other: "ActivationPass") -> "ActivationPass":
        """One pass that serves both: the union of the levels."""
        return ActivationPass(self.samples, tuple(sorted(set(self.levels) | set(other.levels))))


class PassPlan:
    """The merged pass requirements of the probes selected for one subject."""

    def __init__(self, requirements: Iterable[Any] = ()) -> None:
        self._planned: dict[Any, Any] = {}
        for req in requirements:
            self.add(req)

    def add(self, req: Any) -> None:
        """Merge one more requirement into the plan."""
        have = self._planned.get(req.key)
        self._planned[req.key] = req if have is None else have.merge(req)

    def covering(self, req: Any) -> Any:
        """The planned pass that serves ``req`` (``req`` merged in, if no probe declared it)."""
        have = self._planned.get(req.key)
        return req if have is None else have.merge(req)

    def __iter__(self):
        return iter(self._planned.values())

    def __len__(self) -> int:
        return len(self._planned)


def plan_passes(probes: Iterable[Any]) -> PassPlan:
    """The plan for ``probes`` (instances with their configs): every ``requires()`` merged.

    A probe whose ``requires`` raises simply declares nothing; its pass is computed when asked.
    """
    plan = PassPlan()
    for probe in probes:
        try:
            needs = list(probe.requires() or ())
        except Exception:  # noqa: BLE001 - a plugin's odd declaration must not stop the check
            needs = []
        for req in needs:
            if hasattr(req, "key") and hasattr(req, "merge"):
                plan.add(req)
    return plan
