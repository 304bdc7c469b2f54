"""The pytest plugin, end to end with pytester: summary lines, exit codes, report files, xdist.

Inline runs (``pytester.runpytest``) share this process's torch import, so each costs well under a
second; only the torch-import test and the xdist test start new interpreters.
"""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("torch")

# A tiny model file (contract §1) and objects, shared by the generated suites.
MODELS = '''
import torch
from torch import nn

def make_batch(n=16):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g)

class Healthy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(4, 8), nn.Linear(8, 2)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

class Detached(Healthy):
    """fc1's output is detached: no gradient reaches fc1 (the gradients probe fails)."""
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)).detach())

class LogNet(Healthy):
    """log of a pre-activation: NaN in the first forward pass (the nan probe fails)."""
    def forward(self, x):
        return self.fc2(torch.log(self.fc1(x)))
'''

PROBES = '["params", "nan", "gradients"]'

PASSING = f'''
from torch import nn
from models import Healthy, make_batch
from nndiag.testing import assert_report_ok, assert_gradients_flow

def test_healthy(nndiag):
    report = nndiag.check(model=Healthy(), batch=make_batch(), loss_fn=nn.CrossEntropyLoss(),
                          probes={PROBES})
    assert_report_ok(report)
    assert_gradients_flow(report)
'''

FAILING = f'''
from torch import nn
from models import Detached, make_batch
from nndiag.testing import assert_gradients_flow

def test_broken(nndiag):
    report = nndiag.check(model=Detached(), batch=make_batch(), loss_fn=nn.CrossEntropyLoss(),
                          probes={PROBES}, name="detached")
    assert_gradients_flow(report)
'''


@pytest.fixture(scope="session")
def _warm():
    """Import everything the inline runs use before pytester snapshots ``sys.modules``.

    pytester drops modules first imported during an inline run; torch cannot import some of its
    submodules twice in one process (a second ``TORCH_LIBRARY`` registration raises), and
    re-importing them would also cost seconds per run.
    """
    import torch
    from torch import nn

    try:  # hypothesis' plugin (installed here, not ours) imports it at every session's end: 7 s
        import hypothesis.internal.observability  # noqa: F401
    except ImportError:
        pass
    for module in ("nndiag.writers.html", "nndiag.writers.csv_writer"):  # matplotlib, pandas
        try:
            __import__(module)
        except ImportError:
            pass
    import nndiag
    import nndiag.testing  # noqa: F401

    nndiag.check(model=nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)),
                 batch=(torch.randn(8, 4), torch.randint(0, 2, (8,))),
                 loss_fn=nn.CrossEntropyLoss(), probes=["params", "nan", "gradients"])


@pytest.fixture
def suite(_warm, pytester):
    pytester.makepyfile(models=MODELS)
    return pytester


def _json(path):
    return json.loads(path.read_text(encoding="utf-8"))


def test_plugin_alone_does_not_import_torch(pytester):
    pytester.makepyfile(test_plain='''
        import sys

        def test_plain(request):
            assert request.config.pluginmanager.has_plugin("nndiag")
            assert "nndiag.pytest_plugin" in sys.modules
            assert "torch" not in sys.modules, "the nndiag pytest plugin imported torch"
    ''')
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.no_fnmatch_line("*nndiag summary*")  # a suite that never uses nndiag sees nothing


def test_passing_suite(suite):
    suite.makepyfile(test_ok=PASSING)
    result = suite.runpytest("--nndiag-report", "out/report.json")
    result.assert_outcomes(passed=1)
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*= nndiag summary =*",
        "nndiag: 1 check in 1 test: 3 pass",
        f"nndiag report: {suite.path / 'out' / 'report.json'}",
    ])
    data = _json(suite.path / "out" / "report.json")
    assert data["subject"] == "Healthy (test_ok.py::test_healthy)"
    assert [(r["probe"], r["status"]) for r in data["results"]] == [  # in cost order
        ("params", "pass"), ("gradients", "pass"), ("nan", "pass")]


def test_failing_suite_shows_the_table(suite):
    suite.makepyfile(test_bad=FAILING)
    result = suite.runpytest("--nndiag-report", "report.json")
    result.assert_outcomes(failed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "E *NndiagAssertionError: nndiag: 2 findings at FAIL for subject 'detached'",
        "E       probe      where       value  limit",
        "E       gradients  fc1.weight  -      -",
        "E       gradients  fc1.bias    -      -",
        "E         gradients at fc1.weight: *",
        "E       hint: parameters without gradient are cut from the graph*",
        "*= nndiag summary =*",
        "nndiag: 1 check in 1 test: 2 pass, 1 fail",
        "FAIL test_bad.py::test_broken - gradients on detached: fc1.weight: *",
        "nndiag report: *report.json",
        "*short test summary info*",
        "FAILED test_bad.py::test_broken - nndiag.testing.NndiagAssertionError: *",
    ])
    # the helper's own frames are hidden (__tracebackhide__): the traceback stops in the test
    assert "nndiag/testing.py" not in result.stdout.str()
    data = _json(suite.path / "report.json")
    assert {r["probe"]: r["status"] for r in data["results"]}["gradients"] == "fail"


def test_nan_model_fails_assert_finite(suite):
    suite.makepyfile(test_nan='''
        from torch import nn
        from models import LogNet, make_batch
        from nndiag.testing import assert_finite

        def test_nan():
            assert_finite(LogNet(), batch=make_batch(), loss_fn=nn.CrossEntropyLoss())
    ''')
    result = suite.runpytest()
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "E *NndiagAssertionError: nndiag: 1 finding at FAIL for subject 'LogNet'",
        "E       probe  where*value  limit",
        "E       nan    <model> (LogNet)*",
        "*= nndiag summary =*",
        "nndiag: 1 check in 1 test: 1 fail",  # the helper ran only its own probe, and recorded it
        "FAIL test_nan.py::test_nan - nan on LogNet: *",
    ])


def test_erroring_model_file(suite):
    suite.makepyfile(bad_model='''
        raise RuntimeError("the data folder is missing")
    ''')
    suite.makepyfile(test_file='''
        from nndiag.testing import assert_report_ok

        def test_file(nndiag):
            assert_report_ok(nndiag.check("bad_model.py", probes=["params"]))
    ''')
    result = suite.runpytest("--nndiag-report", "r.json")
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "E *NndiagAssertionError: nndiag: subject 'bad_model.py' did not load: *the data folder is missing*",
        "E       hint: the model file could not be used; fix the problem named above",
        "*= nndiag summary =*",
        "nndiag: 1 check in 1 test: 1 not loaded",
        "ERROR test_file.py::test_file - bad_model.py did not load: *",
    ])
    data = _json(suite.path / "r.json")
    assert data["status"] == "error" and "the data folder is missing" in data["error"]


def test_probe_error_fails_helper_and_skip_needs_allow_skip(suite):
    suite.makepyfile(test_err='''
        import pytest, torch
        from torch import nn
        from models import Healthy, LogNet, make_batch
        from nndiag.testing import assert_finite, assert_gradients_flow, NndiagAssertionError

        def bad_loss(output, target):
            raise ValueError("loss exploded on purpose")

        def test_error():
            assert_finite(Healthy(), batch=make_batch(), loss_fn=bad_loss)

        def test_skip_fails():
            assert_gradients_flow(LogNet(), batch=make_batch(), loss_fn=nn.CrossEntropyLoss())

        def test_skip_allowed():
            assert_gradients_flow(LogNet(), batch=make_batch(), loss_fn=nn.CrossEntropyLoss(),
                                  allow_skip=True)
    ''')
    result = suite.runpytest()
    result.assert_outcomes(passed=1, failed=2)
    # A loss that raises for every probe is said once, for the subject (issue 13: file-level
    # failures are reported once), naming the loss as the culprit.
    result.stdout.fnmatch_lines([
        "E *nndiag: subject 'Healthy' did not load: loss_fn(output, targets) raised ValueError: "
        "loss exploded on purpose*The problem is in the file's loss*",
    ])
    result.stdout.fnmatch_lines([
        "E *nndiag: 1 finding at SKIP for subject 'LogNet'",
        "E         gradients: skipped: *",
        "E       hint: the probe could not confirm the property*allow_skip=True*",
    ])


def test_marker_and_options(suite):
    suite.makeini('''
        [pytest]
        nndiag_seed = 3
        nndiag_fail_on = warn
        nndiag_report = reports/from_ini.json
    ''')
    suite.makepyfile(test_opts='''
        import pytest
        from torch import nn
        from models import Healthy, make_batch

        pytestmark = pytest.mark.nndiag(seed=7, params={"expected_total": 1})

        def test_defaults(nndiag):
            assert nndiag.fail_on == "warn"
            assert nndiag.options()["seed"] == 7
            assert nndiag.options()["settings"] == {"params": {"expected_total": 1}}

        @pytest.mark.nndiag(seed=11, params={"expected_trainable": 2}, probes=["params"])
        def test_closest_marker_wins(nndiag):
            opts = nndiag.options()
            assert opts["seed"] == 11 and opts["probes"] == ["params"]
            assert opts["settings"] == {"params": {"expected_total": 1, "expected_trainable": 2}}
            report = nndiag.check(model=Healthy(), batch=make_batch(), loss_fn=nn.CrossEntropyLoss(),
                                  params={"expected_trainable": 58})
            # the call's own settings win over the marker's, key by key
            assert report.subjects[0].result("params").status.value == "fail"  # total 58 != 1
            assert len(report.subjects[0].results) == 1

        def test_fail_on_warn_reaches_the_helpers():
            from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport
            from nndiag.testing import assert_report_ok
            warn = Finding(Status.WARN, "units near saturation", "fc1", 0.3, 0.25)
            report = Report((SubjectReport("m", (ProbeResult("saturation", Status.WARN, "s", (warn,)),)),))
            with pytest.raises(AssertionError, match="1 finding at WARN for subject 'm'"):
                assert_report_ok(report)
            assert_report_ok(report, fail_on="fail")  # an explicit level wins
    ''')
    result = suite.runpytest("--nndiag-seed", "5")
    result.assert_outcomes(passed=3)
    assert (suite.path / "reports" / "from_ini.json").exists()
    result.stdout.fnmatch_lines(["FAIL (test passed) test_opts.py::test_closest_marker_wins - params on Healthy*"])

    suite.makepyfile(test_seed='''
        def test_seed(nndiag):
            assert nndiag.options()["seed"] == 5
            assert nndiag.options()["device"] == "cpu"
    ''')
    result = suite.runpytest("test_seed.py", "--nndiag-seed", "5", "-p", "no:randomly")
    result.assert_outcomes(passed=1)


def test_bad_options_are_usage_errors(_warm, pytester):
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("--nndiag-report", "out.xyz")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--nndiag-report *out.xyz: *no report writer claims the suffix '.xyz'*"
                                 "Use one of *.csv*.html*.json*"])
    result = pytester.runpytest("--nndiag-report", "nosuch=out.xml")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*No report writer for the format 'nosuch'*Registered formats: csv, *json*"])
    pytester.makeini("[pytest]\nnndiag_fail_on = sometimes\n")
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*nndiag_fail_on = 'sometimes': use one of fail, warn.*"])


def test_html_and_csv_reports(suite):
    pytest.importorskip("nndiag.writers.html")
    pytest.importorskip("nndiag.writers.csv_writer")
    suite.makepyfile(test_ok=PASSING)
    result = suite.runpytest("--nndiag-report", "r.html", "--nndiag-report", "r.csv")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["nndiag report: *r.html", "nndiag report: *r.csv"])
    assert "Healthy (test_ok.py::test_healthy)" in (suite.path / "r.html").read_text()
    csv = (suite.path / "r.csv").read_text().splitlines()
    assert csv[0].startswith("subject,probe,status")
    assert any(line.startswith("Healthy (test_ok.py::test_healthy),gradients,pass") for line in csv)


def test_missing_writer_is_reported_not_fatal(_warm, pytester, monkeypatch):
    monkeypatch.setitem(sys.modules, "nndiag.writers.csv_writer", None)  # its import now fails
    pytester.makepyfile(test_x="def test_x(): pass")
    result = pytester.runpytest("--nndiag-report", "r.csv", "--nndiag-report", "r.json")
    assert result.ret == 0
    result.stdout.fnmatch_lines([
        "*= nndiag summary =*",
        "nndiag: could not write *r.csv: its writer is not available *",
        "nndiag report: *r.json",
    ])
    assert json.loads((pytester.path / "r.json").read_text())["results"] == []  # no check ran


def test_xdist_workers_send_their_checks(suite):
    pytest.importorskip("xdist")
    suite.makepyfile(test_many=f'''
        import pytest
        from torch import nn
        from models import Healthy, make_batch

        @pytest.mark.parametrize("i", range(4))
        def test_check(nndiag, i):
            nndiag.check(model=Healthy(), batch=make_batch(), loss_fn=nn.CrossEntropyLoss(),
                         probes=["params"], name=f"net{{i}}")
    ''')
    # Workers are new interpreters: leave out the heavy third-party plugins of this environment.
    result = suite.runpytest("-n", "2", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                             "-p", "no:benchmark", "--nndiag-report", "x.json")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*= nndiag summary =*", "nndiag: 4 checks in 4 tests: 4 pass"])
    data = _json(suite.path / "x.json")
    assert data["subject"] == [f"net{i} (test_many.py::test_check[{i}])" for i in range(4)]
    assert len(data["results"]) == 4


REFERENCE_PROJECT = '''
from pathlib import Path

from nndiag.testing import assert_gradients_flow, assert_report_ok

REPO = Path({repo!r})


def test_reference_mlp_is_healthy(nndiag):
    report = nndiag.check(REPO / "reference_models" / "mlp.py", probes=["params", "data", "nan", "gradients"])
    assert_report_ok(report)


def test_detached_mlp_is_caught(nndiag):
    report = nndiag.check(REPO / "reference_models" / "broken" / "mlp_detached_layer.py",
                          probes=["params", "nan", "gradients"])
    assert_gradients_flow(report)
'''


def test_fresh_project_on_the_reference_mlp_and_a_broken_one(suite, repo, mnist_available):
    """Issue #5's acceptance: the healthy test passes, the broken one fails with the table, and the
    session report lists both."""
    suite.makepyfile(test_model=REFERENCE_PROJECT.format(repo=str(repo)))
    result = suite.runpytest("--nndiag-report", "report.json")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "E *NndiagAssertionError: nndiag: 2 findings at FAIL for subject '*mlp_detached_layer.py'",
        "E       probe * where * value * limit",
        "E       gradients * fc1.weight *",
        "FAILED test_model.py::test_detached_mlp_is_caught - *",
    ])
    data = _json(suite.path / "report.json")
    subjects = [s["subject"] for s in data["subjects"]]
    assert any("mlp.py (test_model.py::test_reference_mlp_is_healthy)" in s for s in subjects)
    assert any("mlp_detached_layer.py (test_model.py::test_detached_mlp_is_caught)" in s for s in subjects)
