"""Everything a writer needs comes from the probe class through the result: description, hint,
applied settings and charts (no registry lookups in the writers); the run order comes from
``Probe.cost``."""

from __future__ import annotations

import json
import types

import pytest

import nndiag
from nndiag.plugins import PluginHost
from nndiag.probe import Probe
from nndiag.report import Report

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

BATCH = (torch.randn(8, 4), torch.randint(0, 2, (8,)))
MODEL = dict(model=lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)), batch=BATCH,
             loss_fn=nn.CrossEntropyLoss())


def test_result_carries_description_hint_and_applied_settings():
    report = nndiag.check(**MODEL, probes=["overfit"], overfit={"steps": 3})
    r = report.subjects[0].result("overfit")
    cls = PluginHost().probes()["overfit"].cls
    assert r.description == cls.description and r.hint == cls.hint and r.hint
    steps = next(s for s in r.settings if s["name"] == "steps")
    assert steps["value"] == 3 and steps["default"] != 3 and steps["source"]
    back = Report.from_dict(json.loads(json.dumps(report.to_dict())))
    assert back.subjects[0].result("overfit").settings == r.settings
    assert back.subjects[0].result("overfit").hint == r.hint


def test_run_order_is_the_probes_cost():
    host = PluginHost()
    order = [s.id for s in host.select()]
    costs = [host.probes()[pid].cls.cost for pid in order]
    assert costs == sorted(costs) and order[0] == "params"

    class Cheap(Probe):
        id = "aaa-cheap-last"
        description = "a probe that says it is the most expensive"
        cost = 10_000

        def run(self, ctx, out):
            out.summary = "ran"

    plugin = types.ModuleType("cheap_plugin")
    plugin.nndiag_register_probes = nndiag.hookimpl(lambda: [Cheap])
    ids = [s.id for s in PluginHost([plugin]).select()]
    assert ids[-1] == "aaa-cheap-last"  # by cost, not by id
