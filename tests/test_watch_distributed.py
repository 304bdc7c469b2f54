"""nndiag.watch inside real 2-rank gloo DDP jobs (tests/dist_helpers starts them, free port chosen in
the parent). Each spawned job costs seconds, so one job runs several scenarios and returns what each
rank saw; the assertions run here, in the parent:

* the same per-check verdicts as one process on the same global batch (each rank gets half);
* a NaN made on rank 1 only is found at its step, named with rank 1 and the module, and every rank
  stops there;
* replicas that differ (an init never broadcast under manual gradient averaging), rank-local
  BatchNorm buffers (DDP(broadcast_buffers=False)), unused parameters (on one rank: stopped before
  DDP would hang; on every rank: named before DDP raises), uneven batch counts (under Join);
* once, the same under `python -m torch.distributed.run` (tests/fixtures/torchrun_watch.py).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from dist_helpers import free_port, run_ranks
from torch import nn
from watch_helpers import batches, make

import nndiag.watch as nw

SEEDS = (0, 1, 2)
LOG = 10
JUMP = 120  # the LR jump of the verdict-parity run (as in test_watch_faults)


def _statuses(report) -> dict[str, str]:
    return {r.probe: r.status.value for r in report.subjects[0].results}


def _events(report, check) -> list:
    return [f for f in report.subjects[0].result(check).findings if str(f.severity) != "pass"]


def _train(model, opt, w, seed, steps, shard=(0, 1), before_step=None):
    """The loop of every scenario: the global digits batch of 64, this rank's half of it."""
    data = batches(seed, 64)
    r, world = shard
    for step in range(steps):
        if before_step is not None:
            before_step(step)
        x, y = next(data)
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x[r::world]), y[r::world])
        loss.backward()
        opt.step()
        w.step(loss)


def _lr_jump(opt):
    def jump(step):
        if step == JUMP:
            for g in opt.param_groups:
                g["lr"] = 0.5
    return jump


def _parity_run(seed, shard):
    """The LR-jump run of test_watch_faults: healthy for 120 steps, then diverging."""
    model, opt = make(seed)
    net = nn.parallel.DistributedDataParallel(model) if shard[1] > 1 else model
    with nw.watch(net, opt, log_every=LOG, on_event=lambda e: None, policy={"nan": "report"}) as w:
        _train(net, opt, w, seed, 200, shard, _lr_jump(opt))
    return w


def _nan_run(rank, seed):
    """A NaN made by model.faulty on rank 1 only, at step k (a Python attribute: DDP broadcasts
    buffers from rank 0 before every forward, which would disarm a buffer flag)."""
    k = 17 + seed
    model, opt = make(seed)
    ddp = nn.parallel.DistributedDataParallel(model)

    def inject(step):
        if step == k and rank == 1:
            model.faulty.forward = lambda x: torch.log(-x.abs() - 1.0)

    w = nw.watch(ddp, opt, log_every=LOG, on_event=lambda e: None)
    try:
        with w:
            _train(ddp, opt, w, seed, 60, (rank, 2), inject)
    except nw.TrainingStopped as exc:
        return {"k": k, "step": exc.event.step, "message": exc.event.message, "closed_at": w.step_index,
                "nan": _statuses(w.report)["watch.nan"]}
    return {"k": k, "step": None}


def _verdicts_and_nan(rank, world):
    out = {}
    for seed in SEEDS:
        w = _parity_run(seed, (rank, world))
        params = torch.cat([p.detach().flatten() for p in w.model.parameters()])
        gathered = [torch.zeros_like(params) for _ in range(world)]
        torch.distributed.all_gather(gathered, params)
        out[seed] = {"statuses": _statuses(w.report),
                     "loss": [f.message for f in _events(w.report, "watch.loss")],
                     "layers": list(w.report.subjects[0].result("watch.gradients").data["early_norm"]),
                     "replica_max_diff": float((gathered[0] - gathered[1]).abs().max()),
                     "nan": _nan_run(rank, seed)}
    return out


def test_two_ranks_give_the_verdicts_of_one_process_on_the_same_global_batch(parity):
    for seed in SEEDS:
        single = _parity_run(seed, (0, 1))
        one = _statuses(single.report)
        ranked = parity[0][seed]["statuses"]
        assert ranked.pop("watch.replicas") == "pass"
        assert ranked == one, seed
        assert one["watch.loss"] == "fail"  # the jump is found, not a vacuous all-pass
        # rank 0 holds rank 1's findings too, each named with its rank(s)
        assert parity[0][seed]["loss"] and all(re.search(r"\(on (every rank|rank 1|rank 0)\)", m)
                                               for m in parity[0][seed]["loss"])
        assert parity[0][seed]["replica_max_diff"] == 0.0  # DDP replicas: bitwise equal
        # a DDP model is watched through its module: names carry no "module." prefix
        assert parity[0][seed]["layers"] == ["fc1", "fc2", "fc3"]


def test_a_nan_on_rank_1_only_is_named_with_its_rank_and_module_and_stops_every_rank(parity):
    for seed in SEEDS:
        per_rank = [parity[r][seed]["nan"] for r in (0, 1)]
        k = per_rank[0]["k"]
        for got in per_rank:
            assert got["step"] == k and got["closed_at"] == k, got  # stopped before the update
            assert got["message"].startswith(f"first non-finite value produced on rank 1 in faulty "
                                             f"(Faulty) at step {k}"), got["message"]
            assert got["nan"] == "fail"


# ---- replicas, unused parameters, uneven batches ---------------------------------------------

class BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.bn, self.fc2 = nn.Linear(64, 32), nn.BatchNorm1d(32), nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(F.relu(self.bn(self.fc1(x))))


class Branchy(nn.Module):
    """fc, plus an `aux` head used on the ranks in `uses_aux` only."""

    def __init__(self, uses_aux: bool) -> None:
        super().__init__()
        self.fc, self.aux = nn.Linear(64, 10), nn.Linear(10, 10)
        self.uses_aux = uses_aux

    def forward(self, x):
        y = self.fc(x)
        return self.aux(y) if self.uses_aux else y


def _watched(net, opt, rank, steps=20, log_every=LOG, seed=0):
    """Run a scenario; (the report's replicas findings, the stop's message or None, steps done)."""
    w = nw.watch(net, opt, log_every=log_every, on_event=lambda e: None)
    stop = None
    try:
        with w:
            _train(net, opt, w, seed, steps, (rank, 2))
    except nw.TrainingStopped as exc:
        stop = exc.event.message
    return [(str(f.severity), f.message) for f in _events(w.report, "watch.replicas")], stop, w.step_index


def _manual_averaging(rank, seed_of_rank):
    torch.manual_seed(seed_of_rank)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)

    def average(*_):  # what DDP does, by hand: mean of the gradients
        for p in model.parameters():
            torch.distributed.all_reduce(p.grad)
            p.grad /= 2

    opt.register_step_pre_hook(average)  # before the watch's hook: it reads the averaged gradient
    return _watched(model, opt, rank)


def _one_rank_faults(rank, kind, k=5):
    """A fault on rank 1 only that DDP's all-reduce does not carry to rank 0: a NaN in the logged
    loss (the gradients stay finite), or a NaN forward in a job without any gradient exchange.
    Either way every rank must stop at the same step."""
    model, opt = make(0)
    net = nn.parallel.DistributedDataParallel(model) if kind == "loss" else model
    w = nw.watch(net, opt, log_every=LOG, on_event=lambda e: None)
    try:
        with w:
            data = batches(0, 64)
            for step in range(30):
                if kind == "forward" and step == k and rank == 1:
                    model.faulty.forward = lambda x: torch.log(-x.abs() - 1.0)
                x, y = next(data)
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(net(x[rank::2]), y[rank::2])
                loss.backward()
                opt.step()
                bad = kind == "loss" and step == k and rank == 1
                w.step(loss * float("nan") if bad else loss)
    except nw.TrainingStopped as exc:
        return exc.event.message, w.step_index
    return None, w.step_index


def _replica_faults(rank, world):
    out = {"unbroadcast": _manual_averaging(rank, seed_of_rank=rank),
           "broadcast": _manual_averaging(rank, seed_of_rank=0)}
    for bb in (False, True):
        torch.manual_seed(0)
        ddp = nn.parallel.DistributedDataParallel(BNNet(), broadcast_buffers=bb)
        out[f"bn_broadcast_{bb}"] = _watched(ddp, torch.optim.SGD(ddp.parameters(), lr=0.1), rank)
    for name, uses in (("unused_rank0", rank == 1), ("unused_everywhere", False)):
        torch.manual_seed(0)
        ddp = nn.parallel.DistributedDataParallel(Branchy(uses))
        out[name] = _watched(ddp, torch.optim.SGD(ddp.parameters(), lr=0.1), rank)
    out["loss_nan_rank1"] = _one_rank_faults(rank, "loss")
    out["grad_nan_rank1"] = _one_rank_faults(rank, "forward")
    # uneven batches under Join: rank 0 has 6 batches, rank 1 has 13 (two log intervals shadowed)
    from torch.distributed.algorithms.join import Join

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    ddp = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.1)
    w = nw.watch(ddp, opt, log_every=5, on_event=lambda e: None)
    with w, Join([ddp, w.distributed]):
        _train(ddp, opt, w, 0, 6 if rank == 0 else 13, (rank, 2))
    out["uneven"] = ([(str(f.severity), f.message) for f in _events(w.report, "watch.replicas")],
                     w.step_index)
    out["join_nan"] = _nan_after_join(rank)
    return out


def _nan_after_join(rank, k=12):
    """Rank 0 runs out of batches after 6 steps (it joins); rank 1 makes a NaN at step k. The joined
    rank takes part in the trip's gather from Join's shadow hook and stops with rank 1."""
    from torch.distributed.algorithms.join import Join

    model, opt = make(0)
    ddp = nn.parallel.DistributedDataParallel(model)

    def inject(step):
        if step == k and rank == 1:
            model.faulty.forward = lambda x: torch.log(-x.abs() - 1.0)

    w = nw.watch(ddp, opt, log_every=5, on_event=lambda e: None)
    try:
        with w, Join([ddp, w.distributed]):
            _train(ddp, opt, w, 0, 6 if rank == 0 else 20, (rank, 2), inject)
    except nw.TrainingStopped as exc:
        return exc.event.step, exc.event.message, \
            [f.message for f in _events(w.report, "watch.replicas")]
    return None, "", []


def _fsdp_refused(rank):
    """nndiag.watch on a fully_shard model: a UsageError naming FSDP (or why FSDP could not run)."""
    from torch.distributed.fsdp import fully_shard

    from nndiag.errors import UsageError

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 2))
    try:
        fully_shard(model)
    except Exception as exc:  # noqa: BLE001 - this torch or backend has no CPU FSDP
        return f"unavailable: {type(exc).__name__}: {exc}"
    try:
        nw.watch(model, torch.optim.SGD(model.parameters(), lr=0.1))
    except UsageError as exc:
        return str(exc)
    return "accepted"


def _all_scenarios(rank, world):
    return {"parity": _verdicts_and_nan(rank, world), "faults": _replica_faults(rank, world),
            "fsdp": _fsdp_refused(rank)}


@pytest.fixture(scope="module")
def job():
    """One spawned 2-rank job for every scenario (starting ranks costs more than the scenarios)."""
    return run_ranks(_all_scenarios, world=2, timeout=600)


@pytest.fixture(scope="module")
def parity(job):
    return [r["parity"] for r in job]


@pytest.fixture(scope="module")
def faults(job):
    return [r["faults"] for r in job]


def test_replicas_that_differ_are_reported_and_stop_training(faults):
    for r in (0, 1):
        found, stop, steps = faults[r]["unbroadcast"]
        assert found and found[0][0] == "fail" and "parameters differ across replicas after step 9" \
            in found[0][1], found
        assert "0.weight" in found[0][1] and stop == found[0][1] and steps == LOG
        assert faults[r]["broadcast"] == ([], None, 20)  # the same job seeded alike: silent


def test_rank_local_batchnorm_buffers_are_a_warning_only_without_broadcast_buffers(faults):
    found, stop, steps = faults[0]["bn_broadcast_False"]
    assert [s for s, _ in found] == ["warn"] and stop is None and steps == 20
    assert "buffers differ across replicas" in found[0][1] and "bn.running_mean" in found[0][1]
    assert "broadcast_buffers=True / forward_sync_buffers=True" in found[0][1]
    assert faults[0]["bn_broadcast_True"] == ([], None, 20)


def test_unused_parameters_are_named_with_the_fix_before_ddp_hangs_or_raises(faults):
    for r in (0, 1):
        found, stop, steps = faults[r]["unused_rank0"]
        assert steps == 0 and stop is not None  # stopped in the first forward, before backward
        assert found == [("fail", stop)]  # and in every rank's report (a cross-rank finding)
        assert "parameters unused in forward on some ranks at step 0: aux.weight on rank 0" in stop
        assert "find_unused_parameters=True" in stop
        found, stop, steps = faults[r]["unused_everywhere"]
        assert steps == 0 and stop is not None  # stopped before the step DDP would raise at
        assert found == [("fail", stop)]
        assert "unused in forward on every rank at step 0: aux.weight, aux.bias" in stop
        assert "find_unused_parameters=True" in stop


def test_uneven_batch_counts_are_reported_and_join_does_not_hang(faults):
    for r in (0, 1):
        found, steps = faults[r]["uneven"]
        assert steps == (6, 13)[r]
        assert [s for s, _ in found] == ["warn"], found
        assert "uneven batch counts across ranks: rank 0 ran 6, rank 1 ran 13 steps" in found[0][1]


def test_a_fault_on_one_rank_that_the_others_cannot_see_still_stops_every_rank_at_once(faults):
    for r in (0, 1):
        message, steps = faults[r]["loss_nan_rank1"]  # judged at the log interval, with rank 1's
        assert steps == LOG and message == "first non-finite loss at step 5: the loss is nan (on rank 1)"
        message, steps = faults[r]["grad_nan_rank1"]  # no DDP: the 1-element all_reduce decides
        assert steps == 5 and message.startswith(
            "first non-finite value produced on rank 1 in faulty (Faulty) at step 5"), message


def test_a_nan_after_a_rank_joined_stops_every_rank_including_the_joined_one(faults):
    for r in (0, 1):
        step, message, replicas = faults[r]["join_nan"]
        assert step == 12 and message.startswith(
            "first non-finite value produced on rank 1 in faulty (Faulty) at step 12"), message
        assert any("rank 0 ran 6, rank 1 ran 12 steps" in m for m in replicas), replicas


def test_fsdp_is_refused_with_a_clear_message(job):
    got = job[0]["fsdp"]
    if got.startswith("unavailable"):
        pytest.skip(got)
    assert "does not support FSDP" in got and "docs/distributed.md" in got, got


def test_one_process_is_unchanged():
    model, opt = make(0)
    with nw.watch(model, opt, log_every=LOG) as w:
        _train(model, opt, w, 0, 5)
    assert w.distributed is None
    assert "watch.replicas" not in _statuses(w.report)


def test_torchrun_job_prints_rank_0s_verdicts_with_the_rank():
    script = Path(__file__).parent / "fixtures" / "torchrun_watch.py"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
         "--master_addr", "127.0.0.1", "--master_port", str(free_port()), str(script)],
        capture_output=True, text=True, timeout=300, env=env, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("rank 0:")]
    assert lines and all("rank 1:" not in ln for ln in proc.stdout.splitlines()), proc.stdout
    assert any("first non-finite value produced on rank 1 in faulty (Faulty) at step 7" in ln
               for ln in lines), proc.stdout
    assert "stopped at step 7 on every rank" in proc.stdout
