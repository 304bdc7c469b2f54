"""The pytest plugin's summary agrees with pytest (an xfail test is XFAILED, a test whose helper
assertion failed is FAILED even when its checks passed), the session report records each test's
outcome, and under xdist the default torch threads share the cores among the workers."""

import json

import pytest

from nndiag.pytest_plugin import xdist_threads

TESTS = '''
import pytest
import torch
from torch import nn
from nndiag.testing import assert_param_count


def model():
    return nn.Linear(4, 2)


def batch():
    return torch.randn(8, 4), torch.randint(0, 2, (8,))


def test_counts_wrong(nndiag):
    report = nndiag.check(model=model, batch=batch(), loss_fn=nn.CrossEntropyLoss(), probes=["params"],
                          name="linear")
    assert_param_count(report, expected=11)  # it has 10: the test fails, the check passed


@pytest.mark.xfail(reason="known dead layer", strict=True)
def test_known_broken(nndiag):
    class Detached(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(self.a(x).detach())

    report = nndiag.check(model=Detached(), batch=batch(), loss_fn=nn.CrossEntropyLoss(),
                          probes=["gradients"], name="detached")
    assert report.status.value == "pass"


def test_fine(nndiag):
    nndiag.check(model=model, batch=batch(), loss_fn=nn.CrossEntropyLoss(), probes=["params"], name="fine")
'''


def test_summary_and_session_report_agree_with_pytest(pytester):
    pytester.makepyfile(test_models=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--nndiag-report", "session.json",
                                           "--nndiag-threads", "1")
    result.assert_outcomes(passed=1, failed=1, xfailed=1)
    out = result.stdout.str()
    summary = out[out.index("nndiag summary"):]
    assert "FAILED test_models.py::test_counts_wrong - the test failed" in summary
    assert "XFAILED test_models.py::test_known_broken - gradients on detached" in summary
    assert "FAIL test_models.py::test_known_broken" not in summary
    report = json.loads((pytester.path / "session.json").read_text())
    assert report["run"]["torch"] and report["run"]["threads"] == 1
    assert report["run"]["command"][0] == "pytest" and "--nndiag-threads" in report["run"]["command"]
    assert report["run"]["tests"] == {"test_models.py::test_counts_wrong": "failed",
                                      "test_models.py::test_fine": "passed",
                                      "test_models.py::test_known_broken": "xfailed"}


@pytest.mark.parametrize("workers, cores, expected", [(2, 16, 8), (4, 2, 1), (1, 3, 3), (3, 8, 2)])
def test_xdist_threads_share_the_cores(workers, cores, expected):
    assert xdist_threads({"workercount": workers}, cores=cores) == expected
