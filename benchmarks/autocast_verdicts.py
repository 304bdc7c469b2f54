"""Per-probe verdicts in fp32 and under ``--autocast bf16`` (CPU) side by side, with the time of each.

The files: the reference models and the zoo's healthy files (by default those marked
``"ci": true`` in reference_models/zoo/healthy/manifest.json; ``--all`` for every healthy file).
Each file is checked twice in this one process, fp32 first, with the same seed and threads
(after one untimed warm-up check), so the two times are comparable; on a shared machine they are
noisy, the totals less so. A verdict that differs is printed with both summaries; the exit
status is 1 when any differs. tests/test_autocast_verdicts.py runs a subset of these in CI.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/autocast_verdicts.py [--all] [--files a.py,b.py]
        [--mode bf16] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

REFERENCE = [f"reference_models/{n}.py" for n in ("xor", "mlp", "cnn", "lstm", "seq_classifier")]
MANIFEST = REPO / "reference_models" / "zoo" / "healthy" / "manifest.json"


def healthy_files(ci_only: bool = True) -> list[str]:
    """The zoo's healthy files (repo-relative), those marked ``"ci": true`` unless ``ci_only`` is False."""
    manifest = json.loads(MANIFEST.read_text())
    return [k for k, v in manifest.items() if v.get("ci") or not ci_only]


def verdicts(path: str, autocast: str | None, threads: int = 1, seed: int = 0) -> tuple[dict, dict, float]:
    """({probe: status}, {probe: summary}, seconds) of one in-process ``nndiag.check``."""
    import nndiag

    start = time.perf_counter()
    report = nndiag.check(REPO / path, autocast=autocast, threads=threads, seed=seed)
    seconds = time.perf_counter() - start
    subject = report.subjects[0]
    status = {r.probe: r.status.value for r in subject.results}
    summary = {r.probe: r.summary for r in subject.results}
    if not subject.results:  # the file could not be checked at all
        status = {"<file>": "error"}
        summary = {"<file>": subject.load_error or "no results"}
    return status, summary, seconds


def compare(path: str, mode: str = "bf16", threads: int = 1, seed: int = 0) -> dict:
    """Both runs of one file: statuses, the probes whose status differs, and both times."""
    s32, m32, t32 = verdicts(path, None, threads, seed)
    s16, m16, t16 = verdicts(path, mode, threads, seed)
    differ = sorted(p for p in set(s32) | set(s16) if s32.get(p) != s16.get(p))
    # Summaries quote the measured numbers: some differ when bf16 really ran (a no-op would not).
    changed = sorted(p for p in set(m32) & set(m16) if m32[p] != m16[p])
    return {"file": path, "fp32": s32, mode: s16, "differ": differ, "numbers_changed": changed,
            "seconds_fp32": round(t32, 2),
            f"seconds_{mode}": round(t16, 2),
            "summaries": {p: {"fp32": m32.get(p), mode: m16.get(p)} for p in differ}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every healthy zoo file, not only ci ones")
    parser.add_argument("--files", default="", help="comma-separated files instead of the default set")
    parser.add_argument("--mode", default="bf16", choices=["bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", default="", help="write the rows here")
    args = parser.parse_args()
    files = args.files.split(",") if args.files else REFERENCE + healthy_files(not args.all)
    verdicts(REFERENCE[0], None, args.threads, args.seed)  # warm-up: imports and torch's first calls
    rows = []
    print(f"{'file':58} {'fp32 s':>7} {args.mode + ' s':>7}  verdicts")
    for path in files:
        row = compare(path, args.mode, args.threads, args.seed)
        rows.append(row)
        same = "same" if not row["differ"] else "DIFFER: " + ", ".join(
            f"{p} {row['fp32'].get(p)}->{row[args.mode].get(p)}" for p in row["differ"])
        print(f"{path:58} {row['seconds_fp32']:7.2f} {row['seconds_' + args.mode]:7.2f}  {same}", flush=True)
        for p, both in row["summaries"].items():
            print(f"    {p} fp32: {both['fp32']}\n    {p} {args.mode}: {both[args.mode]}")
    t32 = sum(r["seconds_fp32"] for r in rows)
    t16 = sum(r["seconds_" + args.mode] for r in rows)
    n_diff = sum(bool(r["differ"]) for r in rows)
    print(f"{len(rows)} files, {n_diff} with a differing verdict; total fp32 {t32:.1f} s, "
          f"{args.mode} {t16:.1f} s ({t16 / max(t32, 1e-9):.2f}x)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return 1 if n_diff else 0


if __name__ == "__main__":
    raise SystemExit(main())
