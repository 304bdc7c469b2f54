"""The JUnit XML writer: valid against the JUnit XSD (tests/schemas/junit-10.xsd), one test case per
probe with the right outcome element, findings grouped by cause with their source line."""

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from nndiag.writers import junit
from report_samples import sample_report

xmlschema = pytest.importorskip("xmlschema", reason="xmlschema is a dev extra (pip install -e '.[dev]')")
XSD = Path(__file__).parent / "schemas" / "junit-10.xsd"


@pytest.fixture(scope="module")
def schema():
    return xmlschema.XMLSchema(str(XSD))


def test_sample_report_is_valid_junit(schema):
    text = junit.render(sample_report())
    schema.validate(text)  # raises XMLSchemaValidationError with the offending element


def test_the_schema_rejects_a_broken_document(schema):
    """The validation can fail: a test case without its required name is refused."""
    bad = junit.render(sample_report()).replace('name="gradients"', "", 1)
    assert not schema.is_valid(bad)


def test_outcomes_map_to_junit_elements():
    root = ET.fromstring(junit.render(sample_report()))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert set(suites) == {"model.py", "broken.py"}
    cases = {c.get("name"): c for c in suites["model.py"].iter("testcase")}
    assert [child.tag for child in cases["params"]] == []
    assert cases["gradients"].find("failure") is not None
    assert cases["nan"].find("error") is not None and "ValueError: bad shape" in cases["nan"].find("error").text
    assert cases["saturation"].find("skipped") is not None
    assert cases["dead-neurons"].find("failure") is None  # warn passes, its finding is in system-out
    assert "never" in cases["dead-neurons"].find("system-out").text
    assert suites["model.py"].get("failures") == "1" and suites["model.py"].get("errors") == "1"
    load = suites["broken.py"].find("testcase")
    assert load.get("name") == "load" and "SyntaxError" in load.find("error").get("message")
    assert root.get("tests") == "6" and root.get("errors") == "2"


def test_a_cause_is_one_entry_with_its_places_and_line():
    root = ET.fromstring(junit.render(sample_report()))
    failure = next(c for c in root.iter("testcase") if c.get("name") == "gradients").find("failure")
    lines = failure.text.splitlines()
    assert len(lines) == 1, lines  # fc1.weight and fc1.bias: one cause
    assert "[fc1.weight, fc1.bias]" in lines[0] and "fc1.bias" in lines[0].split("]", 1)[1]
    if hasattr(sample_report().subjects[0].results[1].findings[0], "line"):
        assert lines[0].endswith("(model.py:12)")


def test_control_characters_are_dropped_and_metadata_are_properties():
    text = junit.render(sample_report())
    assert "\x07" not in text
    props = {p.get("name"): p.get("value") for p in ET.fromstring(text).iter("property")}
    if props:  # the report carries run metadata
        assert props["torch"] == "2.14.1" and props["seed"] == "0" and props["command"] == "nndiag check model.py"
        assert props["sha256:model.py"] == "ab" * 32
