"""``--weights``: checking that the file fits the model leaves the caller's random generators as they
were (contract §4), and the file is read once per run, however many fresh models the probes build."""

from __future__ import annotations

import random

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import nndiag  # noqa: E402
from nndiag.loading import load_model_file  # noqa: E402

MODEL = """
import torch, torch.nn as nn
def build_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))  # draws from torch's RNG
def sample_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
loss_fn = nn.CrossEntropyLoss()
"""


@pytest.fixture
def model_and_weights(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(MODEL)
    w = tmp_path / "w.pt"
    torch.manual_seed(5)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    torch.save(net.state_dict(), w)
    return f, w


def test_loading_weights_leaves_the_callers_rng_alone(model_and_weights):
    f, w = model_and_weights
    torch.manual_seed(123)
    random.seed(1)
    np.random.seed(2)
    before = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    subject = load_model_file(f, weights=w)
    assert subject.weights is not None
    assert torch.equal(torch.get_rng_state(), before[0])
    assert random.getstate() == before[1] and np.array_equal(np.random.get_state()[1], before[2])


def test_weights_file_is_read_once_per_run(model_and_weights, monkeypatch):
    f, w = model_and_weights
    calls = []
    real = torch.load

    def counting(path, *a, **k):
        if str(path) == str(w.resolve()) or str(path) == str(w):
            calls.append(path)
        return real(path, *a, **k)

    monkeypatch.setattr(torch, "load", counting)
    report = nndiag.check(f, weights=w, probes=["params", "gradients", "updates", "dead-neurons"])
    assert all(r.status.value != "error" for r in report.subjects[0].results), report.to_dict()
    assert len(calls) == 1
