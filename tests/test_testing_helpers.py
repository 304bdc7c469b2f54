"""nndiag.testing: the assertion helpers' decisions and message format, on hand-built reports.

Hand-built reports keep these tests independent of the probes' thresholds; two tests run the real
``params`` probe on a tiny model to cover the "run just its probe" path.
"""

from __future__ import annotations

import json

import pytest

from nndiag.report import Finding, ProbeResult, Report, Status, SubjectReport
from nndiag.testing import (
    NndiagAssertionError,
    assert_batch_independent,
    assert_finite,
    assert_gradients_flow,
    assert_lr_in_range,
    assert_no_dead_neurons,
    assert_overfits,
    assert_param_count,
    assert_report_ok,
    assert_updates_all_params,
    merge_options,
    report_from_dict,
)

F, W, P = Status.FAIL, Status.WARN, Status.PASS


DEAD_HINT = "dead ReLUs often come from a too-large learning rate or a negative bias init"
GRAD_HINT = ("parameters without gradient are cut from the graph (.detach(), .data, torch.no_grad(), "
             ".item()/numpy round-trips) or unused in forward; vanishing/exploding norms point at init, "
             "depth or missing normalisation")


def result(probe, status, *findings, summary="", metrics=None, hint=""):
    return ProbeResult(probe, status, summary or f"{probe} {status}", tuple(findings), metrics or {},
                       hint=hint)


def cnn_report():
    """The example of the issue: two failing probes on subject 'cnn'."""
    return Report((SubjectReport("cnn", (
        result("params", P, metrics={"total": 1234, "trainable": 1000}),
        result("dead-neurons", F, Finding(F, "82% of the units of features.3 never activate.",
                                          "features.3", 0.82, 0.5), hint=DEAD_HINT),
        result("gradients", F, Finding(F, "classifier.0 gets a vanishing gradient.", "classifier.0",
                                       3.1e-09, 1e-07), hint=GRAD_HINT),
        result("saturation", W, Finding(W, "tanh units near saturation.", "features.5", 0.3, 0.25)),
    )),))


def test_message_is_summary_table_findings_hint():
    with pytest.raises(NndiagAssertionError) as info:
        assert_report_ok(cnn_report())
    assert str(info.value).splitlines() == [
        "nndiag: 2 findings at FAIL for subject 'cnn'",
        "probe         where         value    limit",
        "dead-neurons  features.3    0.82     0.50",
        "gradients     classifier.0  3.1e-09  1e-07",
        "  dead-neurons at features.3: 82% of the units of features.3 never activate.",
        "  gradients at classifier.0: classifier.0 gets a vanishing gradient.",
        "hint: dead ReLUs often come from a too-large learning rate or a negative bias init; parameters "
        "without gradient are cut from the graph (.detach(), .data, torch.no_grad(), .item()/numpy "
        "round-trips) or unused in forward; vanishing/exploding norms point at init, depth or missing "
        "normalisation",
    ]
    # the hint is the probe's own (Probe.hint, carried by the result); without one, its docs page
    bare = Report((SubjectReport("m", (result("my-probe", F, Finding(F, "bad", "x", 1.0, 0.5)),)),))
    with pytest.raises(NndiagAssertionError) as info:
        assert_report_ok(bare)
    assert str(info.value).splitlines()[-1] == "hint: see docs/probes/my-probe.md"
    assert isinstance(info.value, AssertionError)
    assert info.value.report is not None


def test_fail_on_warn_adds_warnings():
    with pytest.raises(NndiagAssertionError) as info:
        assert_report_ok(cnn_report(), fail_on="warn")
    first = str(info.value).splitlines()[0]
    assert first == "nndiag: 3 findings at FAIL/WARN for subject 'cnn'"
    assert "saturation    features.5    0.30     0.25" in str(info.value)


def test_specific_helpers_read_their_probe_from_a_report():
    report = cnn_report()
    with pytest.raises(NndiagAssertionError, match="1 finding at FAIL for subject 'cnn'"):
        assert_no_dead_neurons(report)
    with pytest.raises(NndiagAssertionError, match="classifier.0"):
        assert_gradients_flow(report)
    assert assert_param_count(report, 1234, trainable=1000) is report
    with pytest.raises(NndiagAssertionError) as info:
        assert_param_count(report, 1200)
    assert str(info.value).splitlines()[1:3] == ["probe   where    value  limit",
                                                 "params  <model>  1234   1200"]
    # a probe that did not run in the report: say so, name what ran
    with pytest.raises(NndiagAssertionError, match="probe 'overfit' did not run on 'cnn'"):
        assert_overfits(report)
    with pytest.raises(TypeError):
        assert_finite(report, seed=3)  # a report and check arguments: one or the other


@pytest.mark.parametrize("helper, probe", [
    (assert_overfits, "overfit"), (assert_finite, "nan"), (assert_gradients_flow, "gradients"),
    (assert_no_dead_neurons, "dead-neurons"), (assert_lr_in_range, "lr-range"),
    (assert_updates_all_params, "updates"), (assert_batch_independent, "batch-independence"),
    (assert_param_count, "params"),
])
def test_error_and_skip_fail_every_helper(helper, probe):
    ok = Report((SubjectReport("m", (result(probe, P),)),))
    assert helper(ok) is ok
    error = Report((SubjectReport("m", (result(probe, Status.ERROR, Finding(Status.ERROR, "forward raised KeyError: 'x'")),)),))
    with pytest.raises(NndiagAssertionError) as info:
        helper(error)
    assert "forward raised KeyError: 'x'" in str(info.value)
    assert str(info.value).splitlines()[-1].startswith("hint: the probe could not run")
    skipped = Report((SubjectReport("m", (result(probe, Status.SKIP, summary="skipped: no ReLU"),)),))
    with pytest.raises(NndiagAssertionError, match="1 finding at SKIP") as info:
        helper(skipped)
    assert "skipped: no ReLU" in str(info.value)
    assert helper(skipped, allow_skip=True) is skipped


def test_report_ok_allows_skips_but_not_errors_or_load_errors():
    assert_report_ok(Report((SubjectReport("m", (result("data", Status.SKIP), result("nan", P))),)))
    with pytest.raises(NndiagAssertionError, match="at SKIP"):
        assert_report_ok(Report((SubjectReport("m", (result("data", Status.SKIP),)),)), allow_skip=False)
    with pytest.raises(NndiagAssertionError, match="did not load: No file model.py"):
        assert_report_ok(Report((SubjectReport("model.py", load_error="No file model.py"),)))
    with pytest.raises(NndiagAssertionError, match="nothing was checked"):
        assert_report_ok(Report(()))
    with pytest.raises(ValueError):
        assert_report_ok(cnn_report(), fail_on="sometimes")


def test_report_from_dict_round_trips():
    report = cnn_report().merged(Report((SubjectReport("bad.py", load_error="boom"),)))
    nan = Report((SubjectReport("n", (result("nan", F, Finding(F, "NaN", "fc1", float("nan"), None)),)),))
    for r in (report, cnn_report(), nan):
        back = report_from_dict(json.loads(json.dumps(r.to_dict())))
        assert back.to_dict() == r.to_dict()
    assert report_from_dict(Report(()).to_dict()).subjects == ()


def test_merge_options_merges_probe_settings_key_by_key():
    merged = merge_options({"seed": 0, "device": "cpu"},
                           {"seed": 5, "overfit": {"steps": 100, "lr": 0.1}},
                           {"settings": {"overfit": {"lr": 0.01}}, "lr_range": {"points": 5}})
    assert merged == {"seed": 5, "device": "cpu",
                      "settings": {"overfit": {"steps": 100, "lr": 0.01}, "lr-range": {"points": 5}}}
    with pytest.raises(TypeError, match="per-probe settings must be a dict"):
        merge_options({"overfit": 100})


def test_helpers_run_just_their_probe_on_objects():
    torch = pytest.importorskip("torch")
    from torch import nn

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    batch = (torch.randn(8, 4), torch.randint(0, 2, (8,)))
    report = assert_param_count(model, 58, batch=batch, loss_fn=nn.CrossEntropyLoss())
    assert [r.probe for _, r in report.all_results()] == ["params"]
    with pytest.raises(NndiagAssertionError, match="params  <model>  58     57"):
        assert_param_count(model, 57, batch=batch, loss_fn=nn.CrossEntropyLoss())
    with pytest.raises(TypeError, match="runs only the 'params' probe"):
        assert_param_count(model, batch=batch, loss_fn=nn.CrossEntropyLoss(), probes=["nan"])
