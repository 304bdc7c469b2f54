"""A ``torch.compile``'d model under the watch: hooks on the wrapper, names from the eager module.

The wrapper's parameters are named ``_orig_mod.0.weight``; users know their model as ``0.weight``.
The NaN replay runs on the eager module, op by op (a replay of the compiled wrapper under the
tracer made dynamo recompile it and log graph-break warnings)."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import torch.nn.functional as F

import nndiag
from nndiag.torchhooks import uncompiled
from nndiag.watch import TrainingStopped
from nndiag.writers import json_writer


class _LogAt(torch.nn.Module):
    """Identity, except on the armed step: log(x - 1000) turns finite inputs into NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def forward(self, x):
        return torch.log(x - 1000.0) if self.armed else x


def _run(seed: int, nan_step: int):
    torch.manual_seed(seed)
    bad = _LogAt()
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), bad, torch.nn.Linear(16, 2))
    compiled = torch.compile(model, backend="eager")
    opt = torch.optim.SGD(compiled.parameters(), lr=0.1)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    stopped = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with nndiag.watch(compiled, opt, on_event=lambda e: None) as w:
                for step in range(60):
                    bad.armed = step == nan_step
                    opt.zero_grad()
                    loss = F.cross_entropy(compiled(x), y)
                    loss.backward()
                    opt.step()
                    w.step(loss)
        except TrainingStopped as exc:
            stopped = exc
    return w, stopped


def _results(doc):
    for subject in doc.get("subjects", [doc]):  # one subject: its results at the top level
        yield from subject["results"]


@pytest.mark.parametrize("seed", [0, 1])
def test_a_compiled_model_is_named_and_stopped_as_the_eager_one(seed, monkeypatch):
    from nndiag.watch import replay

    replayed = []  # the type of the module each replay ran (dynamo logs its recompiles, it does not warn)
    real = replay._instrumented
    monkeypatch.setattr(replay, "_instrumented",
                        lambda twin, *a: (replayed.append(type(twin).__name__), real(twin, *a))[1])
    w, stopped = _run(seed, nan_step=30 + seed)
    assert stopped is not None, "the NaN at the armed step did not stop training"
    assert stopped.event.step == 30 + seed
    assert stopped.event.where == "2 (_LogAt)"
    text = json_writer.render(w.report)
    assert "_orig_mod" not in text and "OptimizedModule" not in text
    # the per-layer series are named as in the eager model: layers "0" and "3", site "1 (ReLU)"
    results = {r["probe"]: r for r in _results(json.loads(text))}
    names = {s["name"] for c in results["watch.gradients"]["data"]["charts"] for s in c["series"]}
    assert {"0", "3"} <= names, names
    sites = {s["name"] for c in results["watch.units"]["data"]["charts"] for s in c["series"]}
    assert sites == {"1 (ReLU)"}, sites
    # the replay ran on the eager module, op by op, not through the compiled wrapper
    assert replayed == ["Sequential"], replayed


def test_uncompiled_peels_the_wrapper_and_leaves_other_modules_alone():
    model = torch.nn.Linear(2, 2)
    assert uncompiled(model) is model
    assert uncompiled(torch.compile(model, backend="eager")) is model
