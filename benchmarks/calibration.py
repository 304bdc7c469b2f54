"""The measured distributions behind a probe's thresholds: healthy zoo files against bugs.

Reads the JSON reports that ``benchmarks/accuracy.py`` keeps (``benchmarks/out/accuracy``), takes
one quantity of one probe (a metric, or the ``value`` of its findings with a given ``metric``
name), and prints its distribution on the healthy files and on the bugs that name the probe (and
on all other bugs), with the quantiles a threshold is chosen from. With ``--png`` it also draws the
two histograms (log scale with ``--log``), for the probe's doc page.

Usage::

    python benchmarks/accuracy.py --probe dead-neurons            # measure
    python benchmarks/calibration.py dead-neurons worst_dead_fraction --png docs/probes/img/dead-neurons.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "reference_models" / "zoo"


def expected_probes() -> dict[str, list[str]]:
    """Bug file stem -> the probes its manifest says must flag it."""
    manifest = ZOO / "bugs" / "manifest.json"
    if not manifest.exists():
        return {}
    return {Path(p).stem: e.get("probes", []) for p, e in json.loads(manifest.read_text()).items()}


def values(report: dict, probe: str, quantity: str) -> list[float]:
    """The quantity in one report: the metric of that name, else every finding value under it."""
    out = []
    for subject in report.get("subjects", [report]):
        for r in subject.get("results", []):
            if r.get("probe") != probe:
                continue
            v = r.get("metrics", {}).get(quantity)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append(float(v))
                continue
            out += [float(f["value"]) for f in r.get("findings", [])
                    if f.get("metric") == quantity and isinstance(f.get("value"), (int, float))]
    return out


def quantiles(xs: list[float]) -> str:
    """min / 5% / median / 95% / max of xs."""
    if not xs:
        return "no values"
    xs = sorted(xs)
    q = lambda f: xs[min(len(xs) - 1, int(f * (len(xs) - 1) + 0.5))]  # noqa: E731
    return (f"n={len(xs)} min {xs[0]:.3g}  p5 {q(0.05):.3g}  median {q(0.5):.3g}  "
            f"p95 {q(0.95):.3g}  max {xs[-1]:.3g}")


def main(argv: list[str] | None = None) -> int:
    """Print (and optionally plot) one quantity's distribution, healthy vs bugs."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("probe")
    ap.add_argument("quantity", help="a metric name, or the metric name of findings")
    ap.add_argument("--dir", default=str(REPO / "benchmarks" / "out" / "accuracy"))
    ap.add_argument("--png", help="write the histograms to this PNG")
    ap.add_argument("--log", action="store_true", help="log10 x axis")
    args = ap.parse_args(argv)
    expected = expected_probes()
    groups: dict[str, list[float]] = {"healthy": [], "bugs naming the probe": [], "other bugs": []}
    per_file: dict[str, list[float]] = {}
    for path in sorted(Path(args.dir).glob("*.json")):
        stem, kind = path.stem.rsplit("-s", 1)[0].rsplit("-", 1)
        vs = values(json.loads(path.read_text()), args.probe, args.quantity)
        per_file.setdefault(f"{kind}:{stem}", []).extend(vs)
        if kind == "healthy":
            groups["healthy"] += vs
        elif args.probe in expected.get(stem, []):
            groups["bugs naming the probe"] += vs
        else:
            groups["other bugs"] += vs
    for name, xs in groups.items():
        print(f"{name:22s} {quantiles(xs)}")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.2))
        tf = (lambda v: math.log10(max(v, 1e-30))) if args.log else (lambda v: v)
        for name, colour in (("healthy", "tab:green"), ("bugs naming the probe", "tab:red"),
                             ("other bugs", "tab:gray")):
            xs = [tf(v) for v in groups[name]]
            if xs:
                ax.hist(xs, bins=30, alpha=0.55, color=colour, label=f"{name} ({len(xs)})")
        ax.set_xlabel(("log10 " if args.log else "") + f"{args.probe}: {args.quantity}")
        ax.set_ylabel("values")
        ax.legend(fontsize=8)
        fig.tight_layout()
        Path(args.png).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.png, dpi=110)
        print(f"wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
