"""``nndiag check`` inside a torch.distributed job: every rank checks, rank 0 reports for all.

The merge itself is pure data (nndiag.rank_merge) and is tested on hand-made reports; then real
2-rank gloo jobs (tests/dist_helpers.run_ranks: spawned workers, a free port chosen in the parent)
run the API and the CLI, one job where a rank never reports, and one real ``torchrun`` launch of
``python -m nndiag check``. Each job costs seconds (two fresh processes import torch), so each
worker does several checks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest
from dist_helpers import free_port, run_ranks

from nndiag.rank_merge import merge_ranks, rank_list
from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport

ROOT = Path(__file__).resolve().parents[1]
XOR = str(ROOT / "reference_models" / "xor.py")
BUG = str(ROOT / "tests" / "fixtures" / "ddp_rank_bug.py")  # NaN in `head` on rank 1 only
BUG_PROBES = ["params", "data", "nan"]
SCHEMA = json.loads((ROOT / "tests" / "schemas" / "nndiag-report.schema.json").read_text())


def _probe_args(probes: list[str]) -> list[str]:
    return [arg for p in probes for arg in ("--probe", p)]


def _validate(doc: dict) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(doc)


def _one(results: dict[str, ProbeResult], name: str = "m.py", meta: dict | None = None) -> Report:
    return Report((SubjectReport(name, tuple(results.values())),), meta or {"seed": 0})


def _res(probe: str, status: Status, *findings: Finding, summary: str = "") -> ProbeResult:
    return ProbeResult(probe, status, summary or f"{probe} {status}", findings)


# ---- the merge, on hand-made reports -----------------------------------------------------------
def test_same_verdicts_on_every_rank_read_like_one_process():
    fact = Finding(Status.PASS, "4 parameters", where="fc")
    r0 = _one({"params": _res("params", Status.PASS, fact)})
    r1 = _one({"params": _res("params", Status.PASS, Finding(Status.PASS, "4 parameters (rank 1)", where="fc"))})
    merged = merge_ranks([r0, r1])
    (result,) = merged.subjects[0].results
    assert result.status is Status.PASS and result.summary == "params pass"
    assert result.findings == (fact,)  # rank 0's words, no rank tag
    assert result.data["ranks"] == [{"rank": 0, "status": "pass", "summary": "params pass"},
                                    {"rank": 1, "status": "pass", "summary": "params pass"}]
    assert merged.metadata == {"seed": 0, "world_size": 2}
    assert merged.exit_code() == 0


def test_a_verdict_on_one_rank_only_names_that_rank():
    nan = Finding(Status.FAIL, "First NaN/Inf produced at step 0 in head", where="head")
    fact = Finding(Status.PASS, "checked 20 steps")
    r0 = _one({"nan": _res("nan", Status.PASS, fact, summary="no NaN/Inf in 20 training steps")})
    r1 = _one({"nan": _res("nan", Status.FAIL, nan, fact, summary="first NaN/Inf at step 0 in head.")})
    merged = merge_ranks([r0, r1])
    (result,) = merged.subjects[0].results
    assert result.status is Status.FAIL
    assert result.summary == "fail on rank 1: first NaN/Inf at step 0 in head; pass on rank 0"
    tagged = [f for f in result.findings if f.rank is not None]
    assert [(f.rank, f.message) for f in tagged] == [(1, "on rank 1: First NaN/Inf produced at step 0 in head")]
    assert fact in result.findings  # on both ranks: said once, untagged
    assert merged.exit_code() == 1 and merged.exit_code("warn") == 1
    doc = merged.to_dict()
    _validate(doc)
    assert doc["results"][0]["findings"][0]["rank"] == 1
    assert "rank" not in doc["results"][0]["findings"][1]


def test_same_status_but_different_places_keeps_both_ranks_findings():
    a = Finding(Status.WARN, "dead units", where="fc1")
    b = Finding(Status.WARN, "dead units", where="fc2")
    merged = merge_ranks([_one({"dead-neurons": _res("dead-neurons", Status.WARN, a)}),
                          _one({"dead-neurons": _res("dead-neurons", Status.WARN, b)})])
    (result,) = merged.subjects[0].results
    assert result.status is Status.WARN and result.summary.startswith("warn on every rank, findings differ")
    assert [(f.where, f.rank) for f in result.findings] == [("fc1", 0), ("fc2", 1)]


def test_a_rank_that_cannot_load_the_file_or_never_reports_is_its_own_subject():
    ok = _one({"params": _res("params", Status.PASS)})
    failed = Report((SubjectReport("m.py", load_error="data/shard1.pt does not exist"),), {})
    merged = merge_ranks([ok, failed, "every probe was skipped", None], missing_reason="did not reach it.")
    names = [s.subject for s in merged.subjects]
    assert names == ["m.py", "m.py (rank 1)", "rank 2", "rank 3"]
    assert merged.subjects[1].load_error == "on rank 1: data/shard1.pt does not exist"
    assert merged.subjects[2].load_error == "on rank 2: every probe was skipped"
    assert merged.subjects[3].load_error == "rank 3 did not reach it."
    assert "so its verdicts are missing" in merge_ranks([ok, None]).subjects[1].load_error
    assert merged.metadata["missing_ranks"] == [3] and merged.metadata["world_size"] == 4
    assert merged.exit_code() == 1  # checked on rank 0, but a question went unanswered


def test_the_same_load_error_on_every_rank_is_what_one_process_says():
    failed = Report((SubjectReport("m.py", load_error="no build_model"),), {})
    merged = merge_ranks([failed, failed])
    assert [(s.subject, s.load_error) for s in merged.subjects] == [("m.py", "no build_model")]
    assert merged.exit_code() == 2


def test_rank_list_and_the_schema_rejects_a_bad_rank():
    assert (rank_list([1]), rank_list([2, 0, 2])) == ("rank 1", "ranks 0, 2")
    doc = merge_ranks([_one({"p": _res("p", Status.PASS)})]).to_dict()
    _validate(doc)
    doc["results"][0]["findings"] = [{"severity": "fail", "where": "", "message": "x", "value": None,
                                      "limit": None, "rank": "one"}]
    with pytest.raises(jsonschema.ValidationError):
        _validate(doc)


# ---- real 2-rank gloo jobs ---------------------------------------------------------------------
def _check_on_each_rank(rank: int, world: int, out_dir: str) -> dict:
    """The API and the CLI (in process: CliRunner) on this rank, inside run_ranks' gloo group."""
    from click.testing import CliRunner

    import nndiag
    from nndiag.cli import main

    healthy = nndiag.check(XOR, threads=1)
    broken = nndiag.check(BUG, probes=BUG_PROBES, threads=1)
    json_path = os.path.join(out_dir, f"cli-rank{rank}.json")  # a per-rank name shows who writes
    cli = CliRunner().invoke(main, ["check", BUG, *_probe_args(BUG_PROBES), "--threads", "1",
                                    "--json", json_path])
    import torch.distributed as dist

    from nndiag import rank_job

    real = dist.get_backend
    dist.get_backend = lambda group=None: "nccl"  # as under an NCCL-only group: gather on a gloo one
    try:
        on_nccl = nndiag.check(BUG, probes=["nan"], threads=1)
    finally:
        dist.get_backend = real
    return {"healthy": healthy.to_dict(), "healthy_exit": healthy.exit_code(),
            "broken": broken.to_dict(), "broken_exit": broken.exit_code(),
            "cli_exit": cli.exit_code, "cli_out": cli.output,
            "nccl_status": on_nccl.to_dict()["status"], "own_gloo_group": rank_job._state["gloo"] is not None}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ranks")
    return run_ranks(_check_on_each_rank, str(out), world=2), out


def _verdicts(doc: dict) -> list[tuple[str, str]]:
    return [(r["probe"], r["status"]) for r in doc["results"]]


def test_two_ranks_give_the_verdicts_of_one_process(two_ranks):
    import nndiag

    (rank0, rank1), _ = two_ranks
    single = nndiag.check(XOR, threads=1).to_dict()
    assert _verdicts(rank0["healthy"]) == _verdicts(single)
    assert _verdicts(rank1["healthy"]) == _verdicts(single)
    assert rank0["healthy_exit"] == rank1["healthy_exit"] == 0
    for mine, one in zip(rank0["healthy"]["results"], single["results"]):  # same words, no rank tags
        assert [(f["severity"], f["where"]) for f in mine["findings"]] == \
            [(f["severity"], f["where"]) for f in one["findings"]]
        assert all("rank" not in f for f in mine["findings"])
        assert [row["status"] for row in mine["data"]["ranks"]] == [one["status"]] * 2
    assert rank0["healthy"]["run"]["world_size"] == 2 and single["run"]["world_size"] == 1
    _validate(rank0["healthy"])
    _validate(single)


def test_a_bug_on_rank_1_is_named_and_every_rank_exits_alike(two_ranks):
    (rank0, rank1), _ = two_ranks
    alone = dict(_verdicts(__import__("nndiag").check(BUG, probes=BUG_PROBES, threads=1).to_dict()))
    assert alone["nan"] == "pass"  # one process is rank 0: healthy
    merged = {r["probe"]: r for r in rank0["broken"]["results"]}
    nan = merged["nan"]
    assert nan["status"] == "fail" and nan["summary"].startswith("fail on rank 1: ")
    assert nan["summary"].endswith("pass on rank 0")
    tagged = [f for f in nan["findings"] if f.get("rank") == 1]
    assert tagged and tagged[0]["where"] == "head (Head)" and tagged[0]["message"].startswith("on rank 1: ")
    assert merged["params"]["status"] == "pass" and all("rank" not in f for f in merged["params"]["findings"])
    assert rank0["broken_exit"] == rank1["broken_exit"] == 1
    assert _verdicts(rank1["broken"]) == _verdicts(rank0["broken"])  # every rank has the merged report
    _validate(rank0["broken"])


def test_under_an_nccl_group_the_reports_travel_on_a_gloo_group_of_their_own(two_ranks):
    (rank0, rank1), _ = two_ranks
    assert rank0["own_gloo_group"] and rank1["own_gloo_group"]
    assert rank0["nccl_status"] == rank1["nccl_status"] == "fail"  # rank 1's NaN reached both


def test_the_cli_prints_and_writes_on_rank_0_only(two_ranks):
    (rank0, rank1), out = two_ranks
    assert rank0["cli_exit"] == rank1["cli_exit"] == 1
    assert "fail on rank 1: " in rank0["cli_out"] and rank0["cli_out"].count("ddp_rank_bug.py: FAIL") == 1
    assert rank1["cli_out"] == ""
    assert sorted(p.name for p in out.iterdir()) == ["cli-rank0.json"]
    doc = json.loads((out / "cli-rank0.json").read_text())
    assert doc["run"]["world_size"] == 2 and doc["status"] == "fail"


def _wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _rank_2_hangs(rank: int, world: int, marks: str) -> dict | None:
    """Rank 2 never calls the check (a hung or crashed rank) until rank 0 has its report; rank 0
    starts once rank 1 is about to, so the timeout measures rank 2's absence, not start-up spread."""
    import nndiag

    marks = Path(marks)
    os.environ["NNDIAG_RANK_TIMEOUT"] = "5"
    if rank == 2:
        _wait_for(marks / "rank0-done", 90)
        return None
    if rank == 1:
        (marks / "rank1-ready").touch()
    else:
        _wait_for(marks / "rank1-ready", 60)
    start = time.monotonic()
    report = nndiag.check(BUG, probes=["params"], threads=1)
    if rank == 0:
        (marks / "rank0-done").touch()
    return {"doc": report.to_dict(), "exit": report.exit_code(), "seconds": time.monotonic() - start}


def test_a_rank_that_never_reports_does_not_hang_the_others(tmp_path):
    rank0, rank1, _ = run_ranks(_rank_2_hangs, str(tmp_path), world=3, timeout=120)
    doc = rank0["doc"]
    assert rank0["exit"] == rank1["exit"] == 1
    assert rank0["seconds"] < 40 and rank1["seconds"] < 40  # waited the 5 s timeout, not forever
    assert doc["run"]["missing_ranks"] == [2] and doc["run"]["world_size"] == 3
    by_name = {s["subject"]: s for s in doc["subjects"]}
    assert [r["status"] for r in by_name[BUG]["results"]] == ["pass"]  # rank 0's own verdicts
    assert "did not reach the gather within 5 s" in by_name["rank 2"]["error"]
    assert "could not be gathered because rank 2 did not reach" in by_name["rank 1"]["error"]
    lost = {s["subject"]: s.get("error") for s in rank1["doc"]["subjects"]}  # rank 1 cannot tell more
    assert "rank 0 did not complete the gather within 5 s" in lost["ranks 0, 2"]


def test_metadata_line_and_a_bad_timeout(monkeypatch):
    from nndiag import rank_job
    from nndiag.errors import UsageError
    from nndiag.run_metadata import summary_line

    assert "2 ranks" in summary_line({"world_size": 2, "seed": 0})
    assert "ranks" not in summary_line({"world_size": 1, "seed": 0})
    monkeypatch.setenv(rank_job.TIMEOUT_ENV, "soon")
    with pytest.raises(UsageError, match="NNDIAG_RANK_TIMEOUT='soon' is not a number"):
        rank_job.gather_timeout()
    monkeypatch.setenv(rank_job.TIMEOUT_ENV, "2.5")
    assert rank_job.gather_timeout() == 2.5


def test_on_cuda_the_launched_group_is_gloo_and_nccl_with_a_gpu_per_local_rank(monkeypatch):
    # No GPU here: the choice is checked with torch's CUDA and init calls recorded, not run.
    import torch
    import torch.distributed as dist

    from nndiag import rank_job

    calls = []
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: calls.append(("set_device", i)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, timeout: calls.append((backend, timeout)))
    monkeypatch.setattr(rank_job, "_state", {"broken": False, "gloo": None, "saved_init": None})
    assert rank_job.join_launched_job("cuda")
    from datetime import timedelta

    assert calls == [("set_device", 1), ("cpu:gloo,cuda:nccl", timedelta(seconds=600))]
    monkeypatch.setattr(dist, "is_initialized", lambda: True)  # nndiag's group now exists
    dist.init_process_group("gloo")  # a model file's own call at import: does nothing
    assert len(calls) == 2


def test_a_rank_whose_check_process_ends_early_is_named(monkeypatch, capfd):
    # Under torchrun a rank whose check process dies ends the whole job (torchrun stops every
    # rank); its message must say which rank it was. `--version` exits without a status: the same
    # path as a model file killed by a signal, without starting a process group.
    from nndiag.isolation import run_cli_isolated

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run_cli_isolated(["--version"]) == 2
    assert "nndiag: error: on rank 1: the model file ended the process early" in capfd.readouterr().err


# ---- one real torchrun launch ------------------------------------------------------------------
def test_torchrun_runs_the_cli_on_every_rank_and_rank_0_reports(tmp_path):
    report = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), "-m", "nndiag", "check", BUG,
           *_probe_args(["params", "nan"]), "--threads", "1", "--json", str(report)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NNDIAG_TEST_INIT_AT_IMPORT": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path, check=False)
    out = proc.stdout
    assert out.count("ddp_rank_bug.py: FAIL (1 fail, 1 pass)") == 1, (out, proc.stderr[-3000:])
    assert "fail on rank 1: " in out and "- fail: [head (Head)] on rank 1: " in out
    # every rank exits 1 (torchrun's own status is then 1) and the failure summary shows it
    assert proc.returncode == 1 and "exitcode  : 1" in proc.stderr
    doc = json.loads(report.read_text())
    assert doc["run"]["world_size"] == 2 and doc["status"] == "fail"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
