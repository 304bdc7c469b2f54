"""The plugin surface: built-ins and third parties through one hook, duplicate ids rejected naming
both plugins, the entry-point group, the notification hooks, blocking by environment variable."""

from __future__ import annotations

import sys
import textwrap
import types

import pytest
import torch
import torch.nn as nn
from click.testing import CliRunner

import nndiag
from nndiag import hookspecs
from nndiag.cli import main
from nndiag.errors import UsageError
from nndiag.plugins import DEFAULT_PLUGINS, collect_probes, get_plugin_manager
from nndiag.probe import Probe

BATCH = (torch.randn(8, 4), torch.randint(0, 3, (8,)))


class OutputWidthProbe(Probe):
    """A third-party probe: fails when the model's output is wider than a limit."""

    id = "output-width"
    description = "Output width is at most 2."

    def run(self, ctx, out):
        output = ctx.bench.forward(ctx.bench.fresh_model(), ctx.bench.first_batch())
        out.metric("width", output.shape[1])
        if output.shape[1] > 2:
            out.fail("output too wide", where="<model>", value=output.shape[1], limit=2)


def _plugin(name, *classes):
    mod = types.ModuleType(name)

    @nndiag.hookimpl
    def nndiag_register_probes():
        return list(classes)

    mod.nndiag_register_probes = nndiag_register_probes
    return mod


def test_every_builtin_is_registered_through_the_hook():
    specs = collect_probes(get_plugin_manager())
    assert {s.plugin for s in specs.values()} <= set(DEFAULT_PLUGINS)
    assert {"params", "data", "nan", "gradients"} <= set(specs)
    assert list(specs) == sorted(specs), "registry order must be deterministic (by id)"
    for spec in specs.values():
        assert spec.description and len(spec.description) < 120


def test_third_party_probe_runs_and_reports():
    plugin = _plugin("my_width_plugin", OutputWidthProbe)
    report = nndiag.check(model=lambda: nn.Linear(4, 3), batch=BATCH, loss_fn=nn.CrossEntropyLoss(),
                          probes=["output-width"], plugins=[plugin])
    result = report.subjects[0].result("output-width")
    assert result.status is nndiag.Status.FAIL and result.metrics["width"] == 3


def test_duplicate_probe_id_names_both_plugins():
    class FakeParams(OutputWidthProbe):
        id = "params"

    with pytest.raises(UsageError) as exc:
        collect_probes(get_plugin_manager([_plugin("dup_plugin", FakeParams)]))
    assert "nndiag.probes.params" in str(exc.value) and "dup_plugin" in str(exc.value)


def test_misspelled_hook_fails_loudly():
    mod = types.ModuleType("typo_plugin")

    @nndiag.hookimpl
    def nndiag_register_probe():  # missing "s"
        return []

    mod.nndiag_register_probe = nndiag_register_probe
    with pytest.raises(Exception, match="unknown hook"):
        get_plugin_manager([mod])


def test_notification_hooks_are_called():
    seen = {"probes": [], "runs": 0}
    mod = types.ModuleType("listener")

    @nndiag.hookimpl
    def nndiag_probe_finished(subject, result):
        seen["probes"].append((subject, result.probe))

    @nndiag.hookimpl
    def nndiag_run_finished(report):
        seen["runs"] += 1

    mod.nndiag_probe_finished = nndiag_probe_finished
    mod.nndiag_run_finished = nndiag_run_finished
    hooks = {n for n in dir(hookspecs) if n.startswith("nndiag_")}
    assert hooks == {"nndiag_register_probes", "nndiag_register_writers", "nndiag_probe_finished",
                     "nndiag_run_finished"}
    f_report = nndiag.check(model=lambda: nn.Linear(4, 3), batch=BATCH, loss_fn=nn.CrossEntropyLoss(),
                            probes=["params"], plugins=[mod])
    assert seen["probes"] == [(f_report.subjects[0].subject, "params")]


def test_run_finished_called_for_files(tmp_path):
    seen = []
    mod = types.ModuleType("listener2")
    mod.nndiag_run_finished = nndiag.hookimpl(lambda report: seen.append(report.status))
    f = tmp_path / "m.py"
    f.write_text("import torch, torch.nn as nn\ndef build_model(): return nn.Linear(4, 3)\n"
                 "def sample_batch(): return torch.randn(8, 4), torch.randint(0, 3, (8,))\n"
                 "loss_fn = nn.CrossEntropyLoss()\n")
    nndiag.check(f, probes=["params"], plugins=[mod])
    assert seen == [nndiag.Status.PASS]


@pytest.fixture
def installed_entry_point(tmp_path, monkeypatch):
    """A real distribution on sys.path declaring a probe in the ``nndiag`` entry-point group."""
    pkg = tmp_path / "thirdparty_probe.py"
    pkg.write_text(textwrap.dedent("""
        import nndiag
        from nndiag.probe import Probe

        class LayerCountProbe(Probe):
            id = "layer-count"
            description = "Counts the modules of the model."

            def run(self, ctx, out):
                n = sum(1 for _ in ctx.bench.fresh_model().modules())
                out.metric("modules", n)
                out.summary = f"{n} modules"

        @nndiag.hookimpl
        def nndiag_register_probes():
            return [LayerCountProbe]
    """))
    dist = tmp_path / "thirdparty_probe-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-probe\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[nndiag]\nlayer_count = thirdparty_probe\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("thirdparty_probe", None)


def test_entry_point_probe_is_listed_and_runs(installed_entry_point, tmp_path):
    result = CliRunner().invoke(main, ["probes"])
    assert result.exit_code == 0
    line = next(l for l in result.output.splitlines() if l.startswith("layer-count"))
    assert "layer_count" in line and "Counts the modules" in line
    f = tmp_path / "m.py"
    f.write_text("import torch, torch.nn as nn\ndef build_model(): return nn.Sequential(nn.Linear(4, 3))\n"
                 "def sample_batch(): return torch.randn(8, 4), torch.randint(0, 3, (8,))\n"
                 "loss_fn = nn.CrossEntropyLoss()\n")
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["check", str(f), "--probe", "layer-count", "--json", str(out)])
    assert result.exit_code == 0, result.output
    import json

    (r,) = json.loads(out.read_text())["results"]
    assert r["probe"] == "layer-count" and r["metrics"]["modules"] == 2


def test_disabled_plugins_env_blocks_entry_point(installed_entry_point, monkeypatch):
    monkeypatch.setenv("NNDIAG_DISABLED_PLUGINS", "layer_count")
    assert "layer-count" not in collect_probes(get_plugin_manager())
