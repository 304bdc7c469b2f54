"""One report from the reports of every rank of a ``torch.distributed`` job (pure data, no torch).

Each rank checks the model file on its own process; :func:`merge_ranks` turns what they return into
the one report rank 0 prints. Per subject and probe:

- every rank gave the same verdict (same status, same warn/fail/error findings by place): rank 0's
  result, unchanged, so a healthy job reads exactly like one process;
- the ranks differ: the worst status, the summary of the first rank that reached it, prefixed
  ``"fail on rank 1: ..."`` and followed by the other ranks' statuses, and every finding that is not
  on all ranks tagged with its rank (``Finding.rank``, message ``"on rank 1: ..."``).

Either way ``data["ranks"]`` lists each rank's status and summary. A subject that did not load on
some ranks, a rank whose whole check failed, and a rank that never reported each become a
subject of their own that cannot be checked, named after the rank: the exit status is then 1, and
never taken for a pass.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Mapping, Sequence

from nndiag.report import WORST_FIRST, Finding, ProbeResult, Report, Status, SubjectReport

# What a rank hands in: its Report, the message of the error that stopped its check, or None when
# it never reported (crashed, hung, or never called the check).
Outcome = Report | str | None


def rank_list(ranks: Iterable[int]) -> str:
    """``"rank 1"``, ``"ranks 0, 2"``: the ranks named in a message."""
    found = sorted(set(ranks))
    label = "rank" if len(found) == 1 else "ranks"
    return f"{label} {', '.join(str(r) for r in found)}"


MISSING = ("so its verdicts are missing: it crashed, hung, or never called the check (every rank "
           "must run it).")


def merge_ranks(outcomes: Sequence[Outcome], missing_reason: str = f"did not report, {MISSING}") -> Report:
    """The job's report from ``outcomes[r]``, rank r's outcome (see :data:`Outcome`).

    ``missing_reason`` follows the ranks' names in the message of the ranks that never reported
    (e.g. "did not reach the gather within 600 s, so its verdicts are missing: ...")."""
    reports = {r: o for r, o in enumerate(outcomes) if isinstance(o, Report)}
    subjects: list[SubjectReport] = []
    for name in _subject_names(reports.values()):
        per_rank = {r: s for r, rep in reports.items() for s in rep.subjects if s.subject == name}
        subjects += merge_subject(name, per_rank, len(outcomes))
    failed: dict[str, list[int]] = {}
    for r, o in enumerate(outcomes):
        if isinstance(o, str):
            failed.setdefault(o, []).append(r)
    for message, where in failed.items():
        subjects.append(SubjectReport(rank_list(where), load_error=f"on {rank_list(where)}: {message}"))
    missing = [r for r, o in enumerate(outcomes) if o is None]
    if missing:
        subjects.append(SubjectReport(rank_list(missing), load_error=f"{rank_list(missing)} {missing_reason}"))
    first = next(iter(reports.values()), None)
    meta: dict[str, Any] = dict(first.metadata) if first is not None else {}
    meta["world_size"] = len(outcomes)
    if missing:
        meta["missing_ranks"] = missing
    return Report(tuple(subjects), meta)


def _subject_names(reports: Iterable[Report]) -> list[str]:
    names: list[str] = []
    for rep in reports:
        names += [s.subject for s in rep.subjects if s.subject not in names]
    return names


def merge_subject(name: str, per_rank: Mapping[int, SubjectReport], world: int) -> list[SubjectReport]:
    """The merged subject, then one unloadable subject per distinct load error (named by rank)."""
    loaded = {r: s for r, s in per_rank.items() if not s.load_error}
    errors: dict[str, list[int]] = {}
    for r, s in sorted(per_rank.items()):
        if s.load_error:
            errors.setdefault(s.load_error, []).append(r)
    if not loaded and len(errors) == 1 and len(per_rank) == world:
        # the same load error everywhere: exactly what one process says
        return [dataclasses.replace(per_rank[min(per_rank)])]
    out = []
    if loaded:
        probes: list[str] = []
        for r in sorted(loaded):
            probes += [p.probe for p in loaded[r].results if p.probe not in probes]
        results = [merge_result({r: res for r in sorted(loaded) for res in loaded[r].results
                                 if res.probe == probe}) for probe in probes]
        out.append(SubjectReport(name, tuple(results)))
    for message, where in errors.items():
        out.append(SubjectReport(f"{name} ({rank_list(where)})", load_error=f"on {rank_list(where)}: {message}",
                                 load_error_details=per_rank[where[0]].load_error_details))
    return out


def _bad_keys(result: ProbeResult) -> set[tuple[str, str, str]]:
    """What a verdict is made of: its warn/fail/error findings by severity, place and metric."""
    return {_key(f) for f in result.findings if f.severity in (Status.WARN, Status.FAIL, Status.ERROR)}


def _key(f: Finding) -> tuple[str, str, str]:
    return (f.severity.value, f.where, f.metric)


def merge_result(per_rank: Mapping[int, ProbeResult]) -> ProbeResult:
    """One probe's result over the ranks that ran it (``per_rank``: rank -> result)."""
    ranks = sorted(per_rank)
    rows = [{"rank": r, "status": per_rank[r].status.value, "summary": per_rank[r].summary} for r in ranks]
    seconds = max(per_rank[r].seconds for r in ranks)
    same = len({per_rank[r].status for r in ranks}) == 1 and len({frozenset(_bad_keys(per_rank[r]))
                                                                  for r in ranks}) == 1
    if same:
        base = per_rank[ranks[0]]
        return dataclasses.replace(base, data={**base.data, "ranks": rows}, seconds=seconds)
    worst = Status.worst(per_rank[r].status for r in ranks)
    lead = next(r for r in ranks if per_rank[r].status is worst)
    base = per_rank[lead]
    by_status: dict[Status, list[int]] = {}
    for r in ranks:
        by_status.setdefault(per_rank[r].status, []).append(r)
    if len(by_status) == 1:
        summary = f"{worst} on every rank, findings differ by rank; {rank_list([lead])}: {base.summary}"
    else:
        others = "; ".join(f"{s} on {rank_list(by_status[s])}" for s in WORST_FIRST
                           if s in by_status and s is not worst)
        summary = f"{worst} on {rank_list([lead])}: {base.summary.rstrip('. ')}; {others}"
    return dataclasses.replace(base, status=worst, summary=summary,
                               findings=merge_findings(per_rank, first=lead),
                               data={**base.data, "ranks": rows}, seconds=seconds)


def merge_findings(per_rank: Mapping[int, ProbeResult], first: int) -> tuple[Finding, ...]:
    """Every rank's findings once: a finding on every rank (same severity, place, metric) once as
    it is; one on some ranks only, once per rank, tagged with it. ``first``'s findings lead."""
    order = [first] + [r for r in sorted(per_rank) if r != first]
    on: dict[tuple[str, str, str], set[int]] = {}
    for r in order:
        for f in per_rank[r].findings:
            on.setdefault(_key(f), set()).add(r)
    everywhere = set(per_rank)
    out: list[Finding] = []
    for r in order:
        for f in per_rank[r].findings:
            if on[_key(f)] != everywhere:
                out.append(dataclasses.replace(f, message=f"on rank {r}: {f.message}", rank=r))
            elif r == first:  # the same on every rank: said once, in the words of the lead rank
                out.append(f)
    return tuple(out)
