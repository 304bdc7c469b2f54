"""A third-party probe plugin used by tests/test_third_party_plugins.py (not part of nndiag).

It uses only the public surface: ``nndiag.hookimpl``, ``nndiag.probe.Probe``/``threshold`` and the
plain-data charts of ``nndiag.charts``; through those alone it must get everything a built-in gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import nndiag
from nndiag.charts import HBar, Mark
from nndiag.probe import Probe, threshold


@dataclass(frozen=True)
class OutputRangeConfig:
    """Settings of the output-range probe."""

    max_abs: float = threshold(1.0, "test plugin: an arbitrary bound", "fail when any |output| exceeds this")


class OutputRangeProbe(Probe):
    """Fails when an output unit of the fresh model goes beyond ``max_abs`` on the first batch."""

    id = "output-range"
    description = "The model's outputs stay within a bound (a test plugin)."
    hint = "outputs out of range: scale down the last layer's init (the test plugin's hint)"
    cost = 15  # between params (10) and data (20)
    Config = OutputRangeConfig

    def run(self, ctx, out):
        import torch

        bench = ctx.bench
        with torch.no_grad():
            output = bench.forward(bench.fresh_model(), bench.first_batch())
        per_unit = [float(v) for v in output.abs().amax(dim=0)]
        out.data["per_unit_max"] = per_unit
        out.metric("max_abs_output", max(per_unit))
        for i, v in enumerate(per_unit):
            if v > self.config.max_abs:
                out.fail(f"output unit {i} reaches {v:.3g}, above {self.config.max_abs:g}.", where=f"unit {i}",
                         value=v, limit=self.config.max_abs, metric="max_abs_output")
        out.summary = f"largest |output| {max(per_unit):.3g} (limit {self.config.max_abs:g})"

    def charts(self, result):
        values = [v for v in result.data.get("per_unit_max", []) if isinstance(v, float)]
        if not values:
            return []
        return [HBar("Largest |output| per unit", tuple(f"unit {i}" for i in range(len(values))), tuple(values),
                     "max |output|", marks=(Mark(f"limit {self.config.max_abs:g}", self.config.max_abs, "x", 3),))]


@nndiag.hookimpl
def nndiag_register_probes():
    return [OutputRangeProbe]
