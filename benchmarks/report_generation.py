"""How long the HTML and CSV reports take to render, and how large they are.

Runs every probe on the reference models (fresh) and on broken variants, then times
``nndiag.writers.html.render`` and ``nndiag.writers.csv_writer.render`` on each report (the probes'
own time is not counted) and prints a table: wall-clock seconds, and the CPU seconds of the
process (``time.process_time``), which stay meaningful on a machine shared with other jobs. The first HTML render of the process also pays for
importing matplotlib; it is shown in its own column, and the best of ``--repeat`` renders after it.

    NNDIAG_DATA_DIR=../shared/data python benchmarks/report_generation.py [--out DIR] [--repeat 3]
        [--models reference_models/cnn.py reference_models/broken/mlp_detached_layer.py ...]

Also renders the synthetic report of ``tests/fixtures/demo_report.py`` (every plot kind, 3 subjects), so
the numbers exist even where the reference data is missing. ``--out`` keeps the HTML/CSV files.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODELS = [
    "reference_models/cnn.py",
    "reference_models/mlp.py",
    "reference_models/broken/mlp_detached_layer.py",
]


def _render_times(report, repeat: int) -> dict:
    from nndiag.writers import csv_writer, html

    t = time.perf_counter()
    page = html.render(report)
    first = time.perf_counter() - t
    best, best_cpu = first, float("inf")
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        page = html.render(report)
        best = min(best, time.perf_counter() - t)
        best_cpu = min(best_cpu, time.process_time() - c)
    t = time.perf_counter()
    table = csv_writer.render(report)
    csv_s = time.perf_counter() - t
    n_svg = page.count("<svg")
    return {"html": page, "csv": table, "html_first_s": first, "html_s": best, "html_cpu_s": best_cpu,
            "csv_s": csv_s,
            "html_bytes": len(page.encode("utf-8")), "csv_bytes": len(table.encode("utf-8")), "plots": n_svg}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keep the rendered files here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    os.environ.setdefault("NNDIAG_DATA_DIR", str(REPO.parent / "shared" / "data"))

    import torch  # noqa: F401 - loaded first so no render below pays for it

    import nndiag
    from nndiag.writers import svg
    sys.path.insert(0, str(REPO / "tests"))
    from fixtures.demo_report import demo_report

    t = time.perf_counter()
    svg._mpl()
    mpl_import = time.perf_counter() - t
    # a fresh process would pay this inside the first render; measured here on its own
    rows = []
    for name in args.models:
        path = REPO / name
        if not path.exists():
            print(f"skipped {name}: not found", file=sys.stderr)
            continue
        t = time.perf_counter()
        report = nndiag.check(str(path), seed=args.seed)
        probes_s = time.perf_counter() - t
        rows.append((name, probes_s, report))
    rows.append(("demo report (3 subjects)", 0.0, demo_report(2)))

    print(f"matplotlib import (paid once per process, by the first HTML render): {mpl_import:.2f} s")
    head = (f"{'report':48} {'status':6} {'probes s':>8} {'html 1st s':>10} {'html s':>7} {'csv s':>6} "
            f"{'html cpu s':>10} {'plots':>5} {'html KB':>8} {'csv KB':>7}")
    print(head)
    print("-" * len(head))
    for name, probes_s, report in rows:
        r = _render_times(report, args.repeat)
        print(f"{name:48} {str(report.status):6} {probes_s:8.1f} {r['html_first_s']:10.3f} {r['html_s']:7.3f} "
              f"{r['csv_s']:6.3f} {r['html_cpu_s']:10.3f} {r['plots']:5d} {r['html_bytes'] / 1024:8.1f} {r['csv_bytes'] / 1024:7.1f}")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            stem = Path(name).stem if name.endswith(".py") else "demo"
            (args.out / f"{stem}.html").write_text(r["html"], encoding="utf-8")
            (args.out / f"{stem}.csv").write_text(r["csv"], encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
