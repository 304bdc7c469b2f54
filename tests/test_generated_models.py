"""Generated models (issue 14): random, well-formed model files get no crash, no probe ``error`` and
no hang from any probe. A small budget here; ``python benchmarks/fuzz.py --examples 500`` runs the
large one with default settings.
"""

from __future__ import annotations

import collections
import importlib.util
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_SPEC = importlib.util.spec_from_file_location(
    "nndiag_fuzz", Path(__file__).resolve().parents[1] / "benchmarks" / "fuzz.py")
fuzz = importlib.util.module_from_spec(_SPEC)
sys.modules["nndiag_fuzz"] = fuzz
_SPEC.loader.exec_module(fuzz)

# Shorter training runs than the defaults keep the CI budget near 30 s; every probe still runs.
CI_SETTINGS = {"overfit": {"steps": 40}, "lr-range": {"num_it": 20}}


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(model=fuzz.model_files())
def test_generated_model_files_never_crash_error_or_hang(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("generated")
    out = fuzz.run_file(model, folder, settings=CI_SETTINGS, time_limit=60)
    assert not out.crash, f"{out.crash}\n{model.source}"
    assert not out.errors, f"{out.errors}\n{model.source}"
    assert not out.hangs, f"stopped at the time limit: {out.hangs}\n{model.source}"
    assert len(out.statuses) >= 10, out.statuses  # every built-in probe ran


def test_the_strategy_covers_the_issue_mix():
    """Over a few hundred draws every input kind, wrapping, head, dtype and layer family appears."""
    seen: collections.Counter = collections.Counter()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None)
    @given(fuzz.model_files())
    def draw(model):
        compile(model.source, "generated", "exec")  # every file is valid Python
        seen.update(p.split("(")[0] for p in model.parts)

    draw()
    for part in ("vector", "image", "tokens", "sequence", "tensor", "tuple", "dict", "classes",
                 "regression", "binary", "float32", "float64", "sample_batch", "train_loader",
                 "Linear", "Conv2d", "GRU", "LSTM", "RNN", "Embedding", "MultiheadAttention",
                 "TransformerEncoderLayer", "LayerNorm", "BatchNorm1d", "BatchNorm2d", "GroupNorm",
                 "residual", "relu", "tanh", "sigmoid", "gelu"):
        assert seen[part] > 0, f"{part} never drawn: {sorted(seen)}"


@pytest.mark.parametrize("broken", ["h = h.detach()"])
def test_a_broken_generated_file_is_noticed(tmp_path, broken):
    """The harness can fail: a file whose graph is cut does not come back all-pass."""
    source = (
        "import torch\nimport torch.nn as nn\n"
        "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.a = nn.Linear(4, 8)\n        self.b = nn.Linear(8, 3)\n"
        f"    def forward(self, x):\n        h = self.a(x)\n        {broken}\n        return self.b(h)\n"
        "def build_model():\n    return Net()\nloss_fn = nn.CrossEntropyLoss()\n"
        "def sample_batch():\n    g = torch.Generator().manual_seed(0)\n"
        "    return torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)\n")
    out = fuzz.run_file(fuzz.ModelFile(source), tmp_path, settings=CI_SETTINGS, time_limit=60)
    assert out.statuses.get("gradients") == "fail", out.statuses
