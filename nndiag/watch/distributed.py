"""The watch inside a ``torch.distributed`` job (DDP): every rank measures, rank 0 gathers.

Nothing here runs in a single process: :func:`attach` returns None unless
:func:`nndiag.ranks.is_distributed`. In a job, every rank runs its own watch on its own batches, and
the ranks talk only at points every rank reaches at the same step, so no verdict can hang the job:

* **finiteness, every step** (optimizer step pre-hook, after DDP's gradient all-reduce). Under DDP
  the all-reduced gradients are the same on every rank, and a NaN made on one rank is in every
  rank's gradient after the all-reduce, so each rank's local check already takes the world's
  decision: no collective. Without a DDP wrapper (manual gradient averaging), inside
  ``no_sync()``, or inside ``Join``: one 1-element ``all_reduce``.
* **on a trip**: every rank replays its own batch and the producers are gathered
  (``all_gather_object``), so the verdict names the rank that made the NaN.
* **every log interval**: one packed ``all_reduce`` of a small float64 table (per rank: step count,
  number of new findings, joined flag, a norm and a sum per parameter and compared buffer). When the
  table says a rank has findings, one ``all_gather_object`` brings them to every rank; rank 0
  merges them into its report, naming the ranks, and every rank takes the stop decision from the
  merged list. ``watch.replicas`` compares the fingerprints.
* **DDP with find_unused_parameters=False**: at step 0 and every ``sample_every`` steps, a forward
  hook walks the output's autograd graph for parameters it does not reach and all-reduces one
  row per rank, before the backward in which DDP would hang.
* **close**: a last packed exchange compares the step counts (uneven batches).

The watch is a :class:`~torch.distributed.algorithms.Joinable` (``w.distributed``): with
``Join([ddp_model, w.distributed])`` a rank that runs out of batches shadows the watch's collectives
until every rank is done.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.algorithms.join import Joinable, JoinHook

from nndiag import ranks
from nndiag.watch.checks.replicas import ReplicasCheck, differing, rank_list
from nndiag.watch.events import TrainingStopped, WatchHook
from nndiag.watch.timeline import Event

HEAD = 3  # packed row: steps, new findings, joined; then the fingerprints


def unwrap(model: torch.nn.Module) -> tuple[torch.nn.Module, Any]:
    """(the module to watch, the DDP wrapper or None): a DDP model is watched through its inner
    module, so names carry no ``module.`` prefix; DDP's forward calls it, so its hooks see every
    training forward."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        return model.module, model
    return model, None


def attach(watch: Any, wrapper: Any) -> RankSync | None:
    """The watch's distributed side, or None outside a multi-rank job (then nothing here runs)."""
    if not ranks.is_distributed():
        return None
    _refuse_sharded(watch.model)
    return RankSync(watch, wrapper)


def _refuse_sharded(model: torch.nn.Module) -> None:
    """FSDP shards the parameters: per-parameter norms and replica fingerprints would be of shards,
    which differ by rank by design (docs/distributed.md, 'Not supported')."""
    from torch.distributed import fsdp

    sharded = isinstance(model, tuple(getattr(fsdp, n) for n in ("FullyShardedDataParallel", "FSDPModule")
                                      if hasattr(fsdp, n)))
    sharded = sharded or any(type(p).__name__ == "DTensor" or type(p.data).__name__ == "DTensor"
                             for p in model.parameters())
    if sharded:
        from nndiag.errors import UsageError

        raise UsageError("nndiag.watch does not support FSDP (FullyShardedDataParallel / fully_shard) "
                         "yet: its parameters are shards, so per-layer norms and the replica check "
                         "would judge shards.", hint="Watch a DDP run of the same model, or a single "
                         "process; see docs/distributed.md.")


def _reached(output: Any) -> set[int] | None:
    """ids of the leaf tensors (parameters) the autograd graph of ``output`` reaches; None when the
    output holds no tensor with a graph (nothing to judge)."""
    roots, stack = [], [output]
    while stack:  # tensors anywhere in tuples, lists, dicts and ModelOutput-like mappings
        x = stack.pop()
        if isinstance(x, torch.Tensor):
            if x.grad_fn is not None:
                roots.append(x.grad_fn)
        elif isinstance(x, dict) or hasattr(x, "values") and callable(x.values):
            stack.extend(x.values())
        elif isinstance(x, (list, tuple)):
            stack.extend(x)
    if not roots:
        return None
    seen, found = set(), set()
    while roots:
        fn = roots.pop()
        if fn is None or fn in seen:
            continue
        seen.add(fn)
        var = getattr(fn, "variable", None)
        if var is not None:
            found.add(id(var))
        roots.extend(f for f, _ in fn.next_functions)
    return found


class _ShadowHook(JoinHook):
    """What a rank that ran out of batches does while the others still step (``Join``)."""

    def __init__(self, sync: RankSync) -> None:
        self.sync = sync

    def main_hook(self) -> None:
        self.sync.shadow_step()


class RankSync(Joinable):
    """One rank's side of the watch's collectives (``w.distributed``)."""

    def __init__(self, watch: Any, wrapper: Any) -> None:
        super().__init__()
        self.w, self.ddp = watch, wrapper
        self.group = getattr(wrapper, "process_group", None)  # None: the default group
        self.rank, self.world = dist.get_rank(self.group), dist.get_world_size(self.group)
        nccl = dist.get_backend(self.group) == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")
        self.check = ReplicasCheck(watch.cfg, self.world)
        watch.checks.append(self.check)
        watch._by_id[self.check.id] = self.check
        # DDP broadcasts buffers at the start of every forward: after a step they are rank-local
        # by design, so they are compared only when nothing broadcasts them
        synced = wrapper is not None and getattr(wrapper, "forward_sync_buffers",  # torch >= 2.12
                                                 getattr(wrapper, "broadcast_buffers", True))
        self.buffers = [] if synced else \
            [(n, b) for n, b in watch.model.named_buffers() if b.is_floating_point()]
        self.walk = wrapper is not None and not wrapper.find_unused_parameters \
            and not getattr(wrapper, "static_graph", False)
        self._walked = -1
        self._everywhere: list[int] = []  # unused on every rank at the walked step: confirm
        self._confirm: Any = None  # the optimizer pre-hook confirming them, while armed
        self._last_exchange = -1
        self.joined = False
        self._shadow = 0

    # ---- Joinable ---------------------------------------------------------------------------
    def join_hook(self, **kwargs: Any) -> JoinHook:
        return _ShadowHook(self)

    @property
    def join_device(self) -> torch.device:
        return self.device

    @property
    def join_process_group(self) -> Any:
        return self.group if self.group is not None else dist.group.WORLD

    @property
    def in_join(self) -> bool:
        """Inside a ``Join`` context (set on every rank when the Join is built)."""
        return bool(self._join_config.enable)

    # ---- hooks ------------------------------------------------------------------------------
    def hooks(self) -> list[Any]:
        """The forward hook that looks for unused parameters (DDP, find_unused_parameters=False)."""
        return [self.w.model.register_forward_hook(WatchHook(self._on_forward))] if self.walk else []

    def _on_forward(self, module, args, output) -> None:
        w = self.w
        s = w.step_index
        if self._confirm is not None and not self._everywhere:
            self._drop_confirm()
        if (s % w.cfg.sample_every and s) or s == self._walked or not module.training \
                or not torch.is_grad_enabled() or self.in_join:
            return  # cheapest test first: this runs on every forward
        self._walked = s
        reached = _reached(output)
        row = torch.zeros(self.world, len(w._params), dtype=torch.float32)
        if reached is not None:
            for i, p in enumerate(w._params):
                if id(p) not in reached:
                    row[self.rank, i] = 1.0
        table = self._all_reduce(row)  # every rank calls this at the same forward
        counts = table.sum(0).tolist()
        some = {w._names[i]: [r for r in range(self.world) if table[r, i] > 0]
                for i, c in enumerate(counts) if 0 < c < self.world}
        self._everywhere = [i for i, c in enumerate(counts) if c == self.world]
        if self._everywhere and w.optimizer is not None and self._confirm is None:
            # confirmed once, before this step's update; removed again at the next forward
            self._confirm = w.optimizer.register_step_pre_hook(WatchHook(self._confirm_unused))
            w._handles.append(self._confirm)
        if some:
            self._emit(lambda: self.check.unused_on_some(s, some), in_forward=True)

    def _drop_confirm(self) -> None:
        if self._confirm in self.w._handles:
            self.w._handles.remove(self._confirm)
        self._confirm.remove()
        self._confirm = None

    def _confirm_unused(self, optimizer, args, kwargs) -> None:
        # a parameter used only by the loss (outside forward) still gets its gradient: not unused
        w, idx, self._everywhere = self.w, self._everywhere, []
        if not idx:
            return  # confirmed already: the next forward removes this hook (not while torch
            # iterates the optimizer's hooks)
        names = [w._names[i] for i in idx if w._params[i].grad is None]
        if names:
            self._emit(lambda: self.check.unused_everywhere(w.step_index, names))

    def _emit(self, add, in_forward: bool = False) -> None:
        """Record a finding every rank reached from the same gathered numbers, and handle it."""
        before = len(self.check.events)
        add()
        for event in self.check.events[before:]:
            if in_forward and event.severity == "fail" and self.w.cfg.policy_of(event.check) == "stop":
                # torch runs the always_call forward hooks again when a hook raises, over the live
                # hook dict: the activation sampler's must be gone before the stop is raised
                self.w.activations.disarm()
            self.w._handle(event)

    # ---- every step -------------------------------------------------------------------------
    def any_rank(self, bad: bool) -> bool:
        """The world's finiteness decision from this rank's ``bad``; same on every rank."""
        if self.ddp is not None and self.ddp.require_backward_grad_sync and not self.in_join:
            return bad  # DDP's all-reduce already gave every rank the same gradients
        v = float(self._all_reduce(torch.tensor([float(bad)], dtype=torch.float64))[0])
        return v % (self.world + 1) > 0  # a joined rank sends world + 1

    def attribute(self, stage: str, where: str, detail: str, found: bool) -> tuple[str, str, str]:
        """Gather every rank's replay; the verdict names the rank(s) that produced the value."""
        got: list[Any] = [None] * self.world
        dist.all_gather_object(got, (self.rank, stage, where, detail, found), group=self.group)
        located = [g for g in got if g is not None and g[4]]
        if not located:
            return f"{stage} on every rank", where, detail + " (on every rank)"
        r, stage, where, detail, _ = located[0]
        also = [g[0] for g in located[1:]]
        if also:
            detail += f"; also located on {rank_list(also)}"
        elif self.ddp is not None:
            detail += ("; the other ranks' own forwards were finite: DDP's gradient all-reduce "
                       "carried it to them")
        return f"{stage} on rank {r}", where, detail

    # ---- every log interval -----------------------------------------------------------------
    def flush(self, final: bool) -> list[Event]:
        """Judge, exchange and merge; the events every rank handles (rank 0: all of them)."""
        w = self.w
        if not final and w.step_index == self._last_exchange:
            return []  # `w.report` read mid-run: judging alone would let one rank decide alone
        start = {c.id: len(c.events) for c in w.checks}  # events before: already the same everywhere
        local = {c.id: c.update(w.timeline) for c in w.checks}
        if final and sys.exc_info()[0] is not None and sys.exc_info()[0] is not TrainingStopped:
            return [e for v in local.values() for e in v]  # one rank's error: the others are elsewhere
        return self._share(local, start, final)

    def _share(self, local: dict[str, list[Event]], start: dict[str, int], final: bool) -> list[Event]:
        w = self.w
        self._last_exchange = w.step_index
        table = self._exchange(sum(len(v) for v in local.values()))
        events = self._merge(local, start) if table[:, 1].sum() > 0 else \
            [e for v in local.values() for e in v]
        before = len(self.check.events)
        self._judge_replicas(table, final)
        if self.rank == 0:
            return events + self.check.events[before:]
        stops = [e for e in events if e.severity == "fail" and w.cfg.policy_of(e.check) == "stop"]
        return stops[:1] + self.check.events[before:]

    def _row(self, n_new: int) -> torch.Tensor:
        w = self.w
        with torch.no_grad():
            tensors = [p.detach() for p in w._params] + [b.detach() for _, b in self.buffers]
            norms = [n.double() for n in torch._foreach_norm(tensors)] if tensors else []
            sums = [t.sum().double() for t in tensors]
        head = torch.tensor([float(w.step_index), float(n_new), float(self.joined)], dtype=torch.float64)
        return torch.cat([head, torch.stack(norms + sums).cpu() if tensors else head[:0]])

    def _exchange(self, n_new: int) -> torch.Tensor:
        row = self._row(n_new)
        table = torch.zeros(self.world, row.numel(), dtype=torch.float64)
        table[self.rank] = row
        return self._all_reduce(table)

    def _all_reduce(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device)
        dist.all_reduce(t, group=self.group)
        return t.cpu()

    def _merge(self, local: dict[str, list[Event]], start: dict[str, int]) -> list[Event]:
        """Gather every rank's new events; rank 0's checks then hold all of them, labelled."""
        mine = [(cid, e) for cid, evs in local.items() for e in evs]
        got: list[Any] = [None] * self.world
        dist.all_gather_object(got, mine, group=self.group)
        merged: list[Event] = []
        for c in self.w.checks:
            seen: dict[tuple, list[int]] = {}
            first: dict[tuple, Event] = {}
            for r, pairs in enumerate(got):
                for cid, e in pairs or []:
                    if cid == c.id:
                        key = (e.severity, e.step, e.where, e.message)
                        seen.setdefault(key, []).append(r)
                        first.setdefault(key, e)
            labelled = [dataclasses.replace(first[k], message=first[k].message + self._label(rs))
                        for k, rs in seen.items()]
            if self.rank == 0:
                c.events[start[c.id]:] = labelled
            merged.extend(labelled)
        return merged

    def _label(self, rs: list[int]) -> str:
        return " (on every rank)" if len(rs) == self.world else f" (on {rank_list(rs)})"

    def _judge_replicas(self, table: torch.Tensor, final: bool) -> None:
        w, chk = self.w, self.check
        step = max(int(table[:, 0].max()) - 1, 0)  # the last step the (furthest) ranks took
        active = [r for r in range(self.world) if table[r, 2] == 0]
        p, b = len(w._params), len(self.buffers)
        fp = table[:, HEAD:].tolist()
        norms, sums = [row[:p + b] for row in fp], [row[p + b:] for row in fp]
        numels = [t.numel() for t in w._params] + [t.numel() for _, t in self.buffers]
        bad = differing(norms, sums, numels, active, w.cfg.replica_rtol)
        chk.comparisons += 1
        params = [(w._names[i], d) for i, d in bad if i < p]
        bufs = [(self.buffers[i - p][0], d) for i, d in bad if i >= p]
        if params:
            chk.params_differ(step, [n for n, _ in params], max(d for _, d in params))
        if bufs:
            chk.buffers_differ(step, [n for n, _ in bufs], max(d for _, d in bufs))
        if final:
            steps = [int(s) for s in table[:, 0].tolist()]
            chk.steps_per_rank = steps
            if len(set(steps)) > 1:
                chk.uneven(steps)

    # ---- Join: this rank ran out of batches -------------------------------------------------
    def shadow_step(self) -> None:
        """Match one step of the others' collectives (they are ``_shadow`` steps in)."""
        w = self.w
        if not self.joined:
            self.joined, self._shadow = True, w.step_index
        s, self._shadow = self._shadow, self._shadow + 1
        if not w._open:
            return
        if w.scaler is None and s % w.sync_every == 0 and not w._tripped:
            v = float(self._all_reduce(torch.tensor([self.world + 1.0], dtype=torch.float64))[0])
            if v % (self.world + 1) > 0:  # the others tripped: match their gather, stop with them
                w._tripped = True
                stage, where, detail = self.attribute("value", "", "", False)
                nan = w._by_id["watch.nan"]
                before = len(nan.events)
                nan.trip(s, stage, where, detail)
                for event in nan.events[before:]:
                    w._handle(event)
        if (s + 1) % w.cfg.log_every == 0:
            for event in self._share({c.id: [] for c in w.checks},
                                     {c.id: len(c.events) for c in w.checks}, final=False):
                w._handle(event)  # a stop raises out of Join on this rank too, as on the others'

