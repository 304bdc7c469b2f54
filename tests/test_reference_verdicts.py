"""The proof that the probes work on real bugs and raise no false alarms (issue #3, "Done when"):

* each broken variant in ``reference_models/broken/`` fails exactly the probes its entry in the bug
  manifest ``reference_models/zoo/bugs/manifest.json`` lists under ``probes`` (``nndiag check FILE
  --json``, every probe, seed 0); the zoo's own bug files are calibration targets, not asserted here;
* no healthy reference model gets a ``fail`` from any probe, fresh or with its trained weights, and
  every ``warn`` it gets is one documented in ``HEALTHY_WARNINGS`` with its reason.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from nndiag.cli import main

REPO = Path(__file__).resolve().parents[1]
BROKEN = REPO / "reference_models" / "broken"
BUG_MANIFEST = json.loads((REPO / "reference_models" / "zoo" / "bugs" / "manifest.json").read_text())
# The broken variants' entries, keyed by file name: only these have verdicts asserted today.
MANIFEST = {Path(key).name: entry for key, entry in BUG_MANIFEST.items()
            if key.startswith("reference_models/broken/")}
WEIGHTS = REPO / "reference_models" / "weights"

# Warnings a healthy reference model may get, each with the documented reason.
# Keyed by (file, probe, trained).
HEALTHY_WARNINGS = {
    ("xor.py", "dead-neurons", False): "2-3 of the 8 hidden ReLU units are never active on the 4 XOR "
                                       "points, which are the whole data set (docs/probes/dead-neurons.md)",
    ("xor.py", "dead-neurons", True): "the same 2 of 8 units as the fresh net (they never fire, so "
                                      "training never revives them); XOR is still fitted 100%",
    ("cnn.py", "dead-neurons", True): "after training, 39-41% of fc1's 128 units never fire (checked over "
                                      "2,048 samples): they died during training yet the net reaches "
                                      "98.95%; a true finding of wasted capacity (docs/reference-results.md)",
}


def check_json(path: Path, tmp_path: Path, *args: str) -> dict:
    out = tmp_path / "report.json"
    result = CliRunner().invoke(main, ["check", str(path), "--json", str(out), *args])
    assert result.exit_code in (0, 1), result.output
    return json.loads(out.read_text())


def test_every_broken_variant_is_in_the_manifest():
    files = {p.name for p in BROKEN.glob("*.py") if not p.name.startswith("_")}
    assert files == set(MANIFEST), "add each broken file to reference_models/zoo/bugs/manifest.json (and only those)"
    for name, entry in MANIFEST.items():
        assert entry["probes"] and entry["bug"], name


BUG_FIELDS = {"bug", "source", "probes", "why", "symptom", "ci"}
SYMPTOMS = {"nan", "no_learning", "diverges", "slow", "frozen", "wrong_output"}
ZOO_BUGS = REPO / "reference_models" / "zoo" / "bugs"


def _symptom_functions() -> set[str]:
    """Names of the top-level functions in zoo/bugs/symptoms.py (read with ast: no torch import)."""
    import ast

    path = ZOO_BUGS / "symptoms.py"
    if not path.exists():
        return set()
    tree = ast.parse(path.read_text())
    return {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}


def test_bug_manifest_lists_every_bug_file_with_a_complete_entry():
    from nndiag.plugins import collect_probes, get_plugin_manager

    probe_ids = set(collect_probes(get_plugin_manager(load_entry_points=False)))
    files = {f"reference_models/zoo/bugs/{p.name}" for p in ZOO_BUGS.glob("*.py")
             if not p.name.startswith("_") and p.name != "symptoms.py"}
    files |= {f"reference_models/broken/{p.name}" for p in BROKEN.glob("*.py") if not p.name.startswith("_")}
    assert files == set(BUG_MANIFEST), {"not in the manifest": sorted(files - set(BUG_MANIFEST)),
                                        "no such file": sorted(set(BUG_MANIFEST) - files)}
    stems = [Path(key).stem for key in BUG_MANIFEST]
    assert len(stems) == len(set(stems)), "bug file stems must be unique (symptoms.py is keyed by stem)"
    functions = _symptom_functions()
    for key, entry in BUG_MANIFEST.items():
        assert BUG_FIELDS <= set(entry), (key, sorted(BUG_FIELDS - set(entry)))
        assert entry["bug"] and entry["source"] and entry["why"], key
        assert entry["probes"] and set(entry["probes"]) <= probe_ids, (key, entry["probes"])
        assert set(entry.get("warn_ok", [])) <= probe_ids, (key, entry.get("warn_ok"))
        assert entry["symptom"] in SYMPTOMS, (key, entry["symptom"])
        assert isinstance(entry["ci"], bool), key
        if entry["symptom"] == "wrong_output":
            assert Path(key).stem in functions, f"{key}: add `def {Path(key).stem}(subject, trace)` to symptoms.py"


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_broken_variant_fails_its_manifest_probes_and_no_unexplained_one(name, tmp_path):
    # Every probe the manifest names must fail; another probe may fail too only where the
    # manifest's warn_ok says why that is a genuine second signal of the same bug.
    report = check_json(BROKEN / name, tmp_path)
    failed = {r["probe"] for r in report["results"] if r["status"] == "fail"}
    entry = MANIFEST[name]
    detail = {r["probe"]: (r["status"], r["summary"]) for r in report["results"]}
    assert set(entry["probes"]) <= failed, detail
    assert failed - set(entry["probes"]) <= set(entry.get("warn_ok", [])), detail


HEALTHY = ["xor.py", "mlp.py", "cnn.py", "lstm.py", "seq_classifier.py"]


def _weights_for(name: str) -> Path | None:
    stem = name[:-3]
    found = sorted(WEIGHTS.glob(f"{stem}-*.pt"))
    return found[0] if found else None


@pytest.mark.parametrize("trained", [False, True], ids=["fresh", "trained"])
@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_reference_model_gets_no_fail(name, trained, tmp_path):
    path = REPO / "reference_models" / name  # MNIST ships with the project: nothing to skip
    args = []
    if trained:
        weights = _weights_for(name)
        if weights is None:
            pytest.skip(f"no trained weights for {name} in reference_models/weights")
        args = ["--weights", str(weights)]
    report = check_json(path, tmp_path, *args)
    statuses = {r["probe"]: r["status"] for r in report["results"]}
    assert "fail" not in statuses.values() and "error" not in statuses.values(), {
        r["probe"]: r["summary"] for r in report["results"] if r["status"] in ("fail", "error")}
    for probe, status in statuses.items():
        if status == "warn":
            assert (name, probe, trained) in HEALTHY_WARNINGS, (
                f"{name} warns on {probe}: fix the false alarm or document the reason")


@pytest.mark.parametrize("key", [
    "reference_models/broken/digits_all_frozen.py",      # frozen, with no trainable parameter at all
    "reference_models/zoo/bugs/digits_mlp_custom_loop.py",  # frozen: zero_grad between backward and step
    "reference_models/zoo/bugs/digits_mlp_dataframe.py",    # wrong_output: every target is class 0
    "reference_models/zoo/bugs/blobs_binary_logsoftmax.py",  # frozen: log_softmax over one unit
])
def test_bug_file_shows_its_manifest_symptom_in_plain_pytorch(key):
    """A short plain-PyTorch run (the zoo validator, 30 steps, seed 0) shows the manifest's symptom."""
    from reference_models.zoo.validate import validate_file

    result = validate_file(key, "bugs", BUG_MANIFEST[key], seeds=[0], steps=30)
    assert result["verdict"] == "ok", result
