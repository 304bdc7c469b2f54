"""The runner plans the measurement passes (nndiag.passes): each is computed once per check with
the merged parameters of the selected probes, and each probe reads the same numbers, and the same
batches, whichever other probes are selected."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

import nndiag  # noqa: E402
from nndiag import training_trace  # noqa: E402
from nndiag.cli import main  # noqa: E402
from nndiag.passes import ActivationPass, PassPlan, TrainingPass  # noqa: E402

MODEL = """
import torch, torch.nn as nn
def build_model():
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 3))
def dataloader():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(320, 6, generator=g), torch.randint(0, 3, (320,), generator=g)
    return [(x[i:i + 32], y[i:i + 32]) for i in range(0, 320, 32)]  # 10 batches of 32
loss_fn = nn.CrossEntropyLoss()
"""


@pytest.fixture
def model_file(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(MODEL)
    return f


def test_plan_merges_requirements():
    plan = PassPlan([TrainingPass(50, 5), TrainingPass(10, 10), ActivationPass(256, (5.0,)),
                     ActivationPass(256, (9.5,)), ActivationPass(64, (5.0,))])
    assert plan.covering(TrainingPass(20, 5)) == TrainingPass(50, 10)
    assert plan.covering(ActivationPass(256, ())) == ActivationPass(256, (5.0, 9.5))
    assert plan.covering(ActivationPass(64, ())).levels == (5.0,)  # other samples: another pass
    assert len(plan) == 3


def test_nan_and_gradients_settings_share_one_training_pass(model_file, monkeypatch, tmp_path):
    runs = []
    real = training_trace.run_training_trace

    def counted(bench, steps, stats_steps, *args, **kwargs):
        runs.append((steps, stats_steps))
        return real(bench, steps, stats_steps, *args, **kwargs)

    monkeypatch.setattr(training_trace, "run_training_trace", counted)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["check", str(model_file), "--probe", "nan", "--probe", "gradients",
                                       "--set", "nan.steps=50", "--set", "nan.watch_steps=1", "--set", "gradients.steps=10", "--json", str(out)])
    assert result.exit_code in (0, 1), result.output
    assert runs == [(50, 10)]  # one pass: nan's steps, gradients' statistics
    results = {r["probe"]: r for r in json.loads(out.read_text())["results"]}
    assert results["nan"]["metrics"]["steps_run"] == 50
    assert results["gradients"]["metrics"]["steps"] == 10


def _stable(result):
    """The result without wall times (``seconds``, ``*_seconds`` metrics, "0.1 s" in sentences)."""
    d = result.to_dict()
    for key in ("seconds", "details"):
        d.pop(key, None)
    d["metrics"] = {k: v for k, v in d["metrics"].items() if not k.endswith("seconds")}
    return re.sub(r"\b\d+\.\d+ s\b", "T s", json.dumps(d, sort_keys=True))


def test_each_probe_reads_the_same_whatever_else_is_selected(model_file):
    together = nndiag.check(model_file, data={"samples": 320}, lr_range={"num_it": 20},
                            overfit={"steps": 20}).subjects[0]
    assert len(together.results) >= 11
    for r in together.results:
        if r.probe == "data":
            continue  # its own setting differs on purpose: it fetched every batch before the others
        alone = nndiag.check_probe(r.probe, model_file, lr_range={"num_it": 20}, overfit={"steps": 20})
        assert _stable(alone) == _stable(r), r.probe
