"""nndiag.ranks on one process and inside a real 2-rank gloo job (started by tests/dist_helpers)."""

from __future__ import annotations

from dist_helpers import run_ranks

from nndiag import ranks


def _where_am_i(rank: int, world: int) -> tuple:
    import torch
    import torch.distributed as dist

    total = torch.tensor([float(rank + 1)])
    dist.all_reduce(total)  # proves the group the helper built is real
    return ranks.rank(), ranks.world_size(), ranks.is_distributed(), ranks.is_rank_zero(), \
        ranks.rank_label(), float(total)


def test_single_process_is_rank_zero_of_one():
    assert (ranks.rank(), ranks.world_size(), ranks.is_distributed(), ranks.rank_label()) == (0, 1, False, "")


def test_two_gloo_ranks_know_where_they_are():
    got = run_ranks(_where_am_i, world=2)
    assert got == [(0, 2, True, True, " on rank 0", 3.0), (1, 2, True, False, " on rank 1", 3.0)]


def test_launcher_environment_is_read_without_a_group():
    assert ranks.launched_by_torchrun({"RANK": "1", "WORLD_SIZE": "2"})
    assert not ranks.launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "1"})
    assert not ranks.launched_by_torchrun({"WORLD_SIZE": "2"})
    assert not ranks.launched_by_torchrun({"RANK": "0", "WORLD_SIZE": "two"})
