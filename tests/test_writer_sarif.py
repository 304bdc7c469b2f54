"""The SARIF 2.1.0 writer and the GitHub annotations: the SARIF log is valid against the OASIS
schema (tests/schemas/sarif-schema-2.1.0.json), one result per cause, at the user's source line."""

import json
from pathlib import Path

import jsonschema
import pytest

from nndiag.writers import github, sarif
from report_samples import sample_report

SCHEMA = json.loads((Path(__file__).parent / "schemas" / "sarif-schema-2.1.0.json").read_text())


def validate(log):
    jsonschema.Draft4Validator(SCHEMA, format_checker=jsonschema.FormatChecker()).validate(log)


def test_sample_report_is_valid_sarif():
    log = json.loads(sarif.render(sample_report()))
    validate(log)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1


def test_the_schema_rejects_a_broken_log():
    """The validation can fail: a level SARIF does not know is refused."""
    log = json.loads(sarif.render(sample_report()))
    log["runs"][0]["results"][0]["level"] = "fail"
    with pytest.raises(jsonschema.ValidationError):
        validate(log)


def test_results_rules_and_locations():
    run = json.loads(sarif.render(sample_report()))["runs"][0]
    rules = [r["id"] for r in run["tool"]["driver"]["rules"]]
    assert rules[:1] == ["params"] and "load" in rules
    by_rule = {}
    for r in run["results"]:
        by_rule.setdefault(r["ruleId"], []).append(r)
        assert rules[r["ruleIndex"]] == r["ruleId"]
    assert set(by_rule) == {"gradients", "dead-neurons", "nan", "load"}  # pass and skip are not results
    (grad,) = by_rule["gradients"]  # two parameters, one cause: one result
    assert grad["level"] == "error" and "fc1.bias" in grad["message"]["text"]
    loc = grad["locations"][0]
    assert loc["logicalLocations"][0]["fullyQualifiedName"] == "fc1.weight, fc1.bias"
    assert loc["physicalLocation"]["artifactLocation"]["uri"] == "model.py"
    if hasattr(sample_report().subjects[0].results[1].findings[0], "line"):
        assert loc["physicalLocation"]["region"]["startLine"] == 12
    assert by_rule["dead-neurons"][0]["level"] == "warning"
    assert by_rule["load"][0]["properties"]["subject"] == "broken.py"


def test_artifact_uris():
    assert sarif.artifact_uri("models/my model.py") == "models/my%20model.py"
    assert sarif.artifact_uri("/tmp/x.py") == "file:///tmp/x.py"


def test_run_metadata_travel_in_the_log():
    report = sample_report()
    run = json.loads(sarif.render(report))["runs"][0]
    if getattr(report, "metadata", None):
        assert run["properties"]["torch"] == "2.14.1"
        assert run["invocations"][0]["commandLine"] == "nndiag check model.py"
        assert run["invocations"][0]["machine"] == "ci-runner"


# --- GitHub annotations ------------------------------------------------------------------------


def test_github_annotations_one_per_cause_with_file_line_and_escaping():
    lines = github.render(sample_report()).splitlines()
    assert len(lines) == 4, lines  # gradients (grouped), dead-neurons, nan, load
    grad = next(line for line in lines if "nndiag gradients" in line)
    assert grad.startswith("::error file=model.py,")
    if hasattr(sample_report().subjects[0].results[1].findings[0], "line"):
        assert ",line=12," in grad
    warn = next(line for line in lines if line.startswith("::warning"))
    # property values escape ':' and ','; the message escapes '%' and newlines but keeps ':'
    assert "title=nndiag dead-neurons [fc1 (Linear)]" in warn
    assert "100%25 dead%2C" not in warn and "100%25 dead,%0Asee: fc1" in warn
    assert all("\n" not in line for line in lines)


def test_github_annotations_only_on_actions():
    assert github.enabled({"GITHUB_ACTIONS": "true"}) and not github.enabled({})


def test_a_real_check_is_valid_sarif_with_the_source_line():
    """A real run (a detached layer in a model defined in this file): the log validates and the
    result points at the line that creates the cut-off layer."""
    import inspect

    import torch
    from torch import nn

    import nndiag

    class Cut(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(4, 4)
            self.b = nn.Linear(4, 2)

        def forward(self, x):
            return self.b(self.a(x).detach())

    report = nndiag.check(model=Cut(), batch=(torch.randn(8, 4), torch.randint(0, 2, (8,))),
                          loss_fn=nn.CrossEntropyLoss(), probes=["gradients"], threads=1)
    log = json.loads(sarif.render(report))
    validate(log)
    (result,) = [r for r in log["runs"][0]["results"] if r["ruleId"] == "gradients"]
    region = result["locations"][0]["physicalLocation"]
    lines, start = inspect.getsourcelines(Cut.__init__)
    assert region["region"]["startLine"] == start + 2  # self.a = nn.Linear(4, 4)
    assert region["artifactLocation"]["uri"].endswith("test_writer_sarif.py")
    assert log["runs"][0]["properties"]["threads"] == 1
