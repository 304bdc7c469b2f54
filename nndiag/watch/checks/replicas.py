"""watch.replicas: what only a multi-rank (DDP) job can get wrong, judged from what the ranks sent.

This check measures nothing and makes no collective call: :mod:`nndiag.watch.distributed` gathers
the ranks' numbers (one packed all-reduce per log interval) and hands them over. Every rank sees the
same gathered numbers, so every rank reaches the same verdicts. Three findings:

* **replicas differ**: a parameter whose norm or sum is not the same on every rank after a step.
  DDP keeps replicas equal (it broadcasts rank 0's parameters when it wraps the model, then every
  rank applies the same all-reduced gradient), so a difference means the ranks train different
  models: an initialisation that was never broadcast under manual gradient averaging, or an update
  made on one rank only. Floating buffers (BatchNorm running statistics) are compared too unless
  DDP broadcasts them before every forward (``forward_sync_buffers``, formerly ``broadcast_buffers``,
  default True); a difference there is rank-local statistics (``broadcast_buffers=False``): a
  warning, since evaluation and checkpoints see rank 0's.
* **unused parameters**: parameters outside the autograd graph of a rank's forward output while
  DDP runs with ``find_unused_parameters=False``. Unused on some ranks only, DDP would wait forever
  in backward for their gradients on the others; unused on every rank, DDP raises at the next step.
* **uneven batch counts**: ranks that ran different numbers of steps (compared when the watch
  closes). Without ``Join`` a DDP job hangs at the first step one rank does not take.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from nndiag.watch.checks.base import Check
from nndiag.watch.timeline import Timeline

MAX_NAMED = 5  # parameters named in one message; the count says how many more


def rank_list(ranks: Sequence[int]) -> str:
    """``rank 1`` / ``ranks 0 and 2`` / ``ranks 0, 1 and 3``."""
    r = [str(x) for x in ranks]
    if len(r) == 1:
        return f"rank {r[0]}"
    return f"ranks {', '.join(r[:-1])} and {r[-1]}"


def names_of(names: Sequence[str]) -> str:
    """At most MAX_NAMED names, then how many more."""
    shown = ", ".join(names[:MAX_NAMED])
    return shown + (f" (and {len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else "")


def differing(norms: Sequence[Sequence[float]], sums: Sequence[Sequence[float]],
              numels: Sequence[int], active: Sequence[int], rtol: float) -> list[tuple[int, float]]:
    """Indices whose fingerprint (norm, sum) differs between the ``active`` ranks, with the largest
    relative difference of the norms. ``norms[r][i]`` is tensor ``i``'s L2 norm on rank ``r``; a sum
    is compared on the scale of ``norm * sqrt(numel)`` (its largest possible size)."""
    out = []
    if len(active) < 2:
        return out
    ref = active[0]
    for i, n in enumerate(numels):
        a_norm, a_sum = norms[ref][i], sums[ref][i]
        worst, bad = 0.0, False
        for r in active[1:]:
            b_norm, b_sum = norms[r][i], sums[r][i]
            if not all(math.isfinite(v) for v in (a_norm, b_norm, a_sum, b_sum)):
                continue  # a non-finite weight is watch.nan's finding
            scale = max(abs(a_norm), abs(b_norm), 1e-30)
            rel = abs(a_norm - b_norm) / scale
            sum_rel = abs(a_sum - b_sum) / (scale * math.sqrt(max(n, 1)))
            if rel > rtol or sum_rel > rtol:
                bad, worst = True, max(worst, rel, sum_rel)
        if bad:
            out.append((i, worst))
    return out


class ReplicasCheck(Check):
    id = "watch.replicas"
    uses = ("replica_rtol",)
    title = "Replicas across ranks (DDP)"

    def __init__(self, config, world: int = 1) -> None:
        super().__init__(config)
        self.world = world
        self.comparisons = 0
        self.steps_per_rank: list[int] | None = None

    def judge(self, tl: Timeline) -> None:
        """Nothing: the distributed layer calls the methods below with the gathered numbers."""

    # ---- the findings (every rank calls these with the same numbers) -----------------------
    def params_differ(self, step: int, names: list[str], worst: float) -> None:
        """Parameters not equal across replicas after ``step``."""
        self.emit("params", "fail", step, names[0], (
            f"parameters differ across replicas after step {step}: {names_of(names)} (relative "
            f"difference up to {worst:.3g}); the ranks train different models. DDP broadcasts rank "
            "0's parameters when it wraps the model and then applies the same averaged gradient "
            "everywhere, so this comes from an initialisation that was never broadcast (manual "
            "gradient averaging: broadcast every parameter from rank 0 before training, or seed every "
            "rank alike) or from an update made on some ranks only"), worst,
            self.cfg.replica_rtol, "replica_difference")

    def buffers_differ(self, step: int, names: list[str], worst: float) -> None:
        """Floating buffers (BatchNorm statistics) not equal across replicas after ``step``."""
        self.emit("buffers", "warn", step, names[0], (
            f"buffers differ across replicas after step {step}: {names_of(names)} (relative "
            f"difference up to {worst:.3g}): rank-local statistics (DDP(broadcast_buffers=False), or "
            "no DDP wrapper): evaluation and a checkpoint saved on rank 0 see rank 0's statistics only. "
            "Fix: let DDP sync them (broadcast_buffers=True / forward_sync_buffers=True, the default), "
            "torch.nn.SyncBatchNorm.convert_sync_batchnorm(model), or all_reduce the buffers before "
            "evaluating or saving"), worst,
            self.cfg.replica_rtol, "replica_difference")

    def unused_on_some(self, step: int, unused: dict[str, list[int]]) -> None:
        """Parameters outside the forward graph on some ranks only (DDP would hang in backward)."""
        names = list(unused)
        where = "; ".join(f"{n} on {rank_list(r)}" for n, r in list(unused.items())[:MAX_NAMED])
        self.emit(("unused", "some"), "fail", step, names[0], (
            f"parameters unused in forward on some ranks at step {step}: {where}"
            + (f" (and {len(names) - MAX_NAMED} more)" if len(names) > MAX_NAMED else "")
            + ". DDP(find_unused_parameters=False) waits in backward for their gradients on the "
            "ranks that used them and hangs; stopped before the backward. Fix: "
            "DDP(model, find_unused_parameters=True), or use every parameter on every rank (add "
            "0 * branch(x) to the output)"), len(names), 0, "unused_parameters")

    def unused_everywhere(self, step: int, names: list[str]) -> None:
        """Parameters that got no gradient on any rank (DDP raises at the next forward)."""
        self.emit(("unused", "all"), "fail", step, names[0], (
            f"parameters unused in forward on every rank at step {step}: {names_of(names)} got no "
            "gradient. DDP(find_unused_parameters=False) raises 'Expected to have finished "
            "reduction in the prior iteration' at the next step. Fix: "
            "DDP(model, find_unused_parameters=True), or remove these parameters from the model "
            "(or freeze them: requires_grad_(False)) before wrapping it"), len(names), 0,
            "unused_parameters")

    def uneven(self, steps: list[int]) -> None:
        """Ranks that ran different numbers of steps (at close)."""
        self.steps_per_rank = list(steps)
        counts = ", ".join(f"rank {r} ran {s}" for r, s in enumerate(steps))
        low = min(range(len(steps)), key=lambda r: steps[r])
        self.emit("uneven", "warn", steps[low], "", (
            f"uneven batch counts across ranks: {counts} steps. Without torch.distributed."
            "algorithms.Join a DDP job hangs at the first step one rank does not take; with it, the "
            "steps only some ranks took averaged their gradients with zeros from the ranks that had "
            "finished. Fix: DistributedSampler(dataset, drop_last=True) or shards of equal length "
            "per rank"), max(steps) - min(steps), 0, "batch_count_spread")

    # ---- the report -------------------------------------------------------------------------
    def healthy_summary(self, tl: Timeline) -> str:
        if self.world < 2:
            return "one process: nothing to compare"
        steps = f"; {self.steps_per_rank[0]} steps on every rank" if self.steps_per_rank else ""
        return (f"{self.world} ranks: replicas equal at {self.comparisons} comparison(s), no unused "
                f"parameter seen{steps}")

    def metrics(self, tl: Timeline) -> dict:
        steps = self.steps_per_rank
        return {"world_size": self.world, "comparisons": self.comparisons,
                "fewest_steps": min(steps) if steps else None, "most_steps": max(steps) if steps else None}
