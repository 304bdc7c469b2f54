"""Real precision problems are named, each on a small broken model with a healthy twin that
stays clean (docs/mixed-precision.md):

* fp16 overflow in a named module: finite inputs whose result exceeds 65504, under fp16 autocast
  or in a ``.half()`` model: the nan probe says "fp16 overflow in fc1 (Linear): max finite fp16
  is 65504" and gives the fix (bf16, or scale the values down); a log(0) under fp16 is not
  called an overflow (the op is recomputed in float32 to tell them apart);
* float16 weights under Adam's default eps=1e-8, which rounds to 0 in float16: the updates probe
  fails naming it with the fix (eps=1e-4, or float32 weights with autocast), and the nan probe's
  finding on the NaN weights says the same.
"""

from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")

import nndiag  # noqa: E402
from nndiag.precision import half_eps_groups  # noqa: E402

NET = """
import torch
import torch.nn as nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 16)
        self.fc2 = nn.Linear(16, 3)
    def forward(self, x):
        return self.fc2({act}(self.fc1(x)))

SCALE = {scale}
HALF = {half}

def build_model():
    model = Net()
    with torch.no_grad():
        model.fc1.weight.mul_(SCALE)
    return model.half() if HALF else model

g = torch.Generator().manual_seed(0)
X = torch.randn(32, 8, generator=g) * 50
Y = torch.randint(0, 3, (32,), generator=g)
if HALF:
    X = X.half()

def sample_batch():
    return X, Y

loss_fn = nn.CrossEntropyLoss()
"""


def _file(tmp_path, name, *, scale=1.0, half=False, act="torch.relu", extra=""):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(NET.format(scale=scale, half=half, act=act)) + extra)
    return path


def _result(path, probe, **kw):
    report = nndiag.check(path, probes=[probe], threads=1, **kw)
    return report.subjects[0].result(probe)


def _messages(result) -> str:
    return " ".join(f.message for f in result.findings)


OVERFLOW = "fp16 overflow in fc1 (Linear): max finite fp16 is 65504"


def test_fp16_autocast_overflow_is_named_with_the_module_and_the_fix(tmp_path):
    # fc1's outputs reach about 1e5 on these inputs: finite in float32, Inf in float16.
    broken = _file(tmp_path, "overflow", scale=1000.0)
    result = _result(broken, "nan", autocast="fp16")
    assert result.status.value == "fail"
    text = _messages(result)
    assert OVERFLOW in text and "bf16" in text and "scale the values down" in text, text
    assert result.findings[0].where == "fc1 (Linear)"
    # The same model is clean in float32 and under bf16 (float32's range): the named fix works.
    assert _result(broken, "nan").status.value == "pass"
    assert _result(broken, "nan", autocast="bf16").status.value == "pass"


def test_fp16_autocast_healthy_twin_stays_clean(tmp_path):
    twin = _file(tmp_path, "twin", scale=1.0)
    result = _result(twin, "nan", autocast="fp16")
    assert result.status.value == "pass", _messages(result)


def test_half_model_overflow_is_named(tmp_path):
    broken = _file(tmp_path, "half_overflow", scale=1000.0, half=True,
                   extra="\ndef build_optimizer(params):\n    return torch.optim.SGD(params, lr=1e-3)\n")
    result = _result(broken, "nan")
    assert result.status.value == "fail" and OVERFLOW in _messages(result), _messages(result)
    twin = _file(tmp_path, "half_twin", scale=1.0, half=True,
                 extra="\ndef build_optimizer(params):\n    return torch.optim.SGD(params, lr=1e-3)\n")
    result = _result(twin, "nan")
    assert result.status.value == "pass", _messages(result)


def test_a_log_of_zero_under_fp16_is_not_called_an_overflow(tmp_path):
    # log(relu(x)) is -inf where relu is 0: non-finite in float32 too, so not an fp16 overflow.
    broken = _file(tmp_path, "log0", act="(lambda h: torch.log(torch.relu(h)))")
    result = _result(broken, "nan", autocast="fp16")
    text = _messages(result)
    assert result.status.value == "fail" and "torch.log" in text and "fp16 overflow" not in text, text


ADAM = "\ndef build_optimizer(params):\n    return torch.optim.Adam(params, lr=1e-3{eps})\n"


def test_half_weights_with_adams_default_eps_are_named_by_updates_and_nan(tmp_path):
    broken = _file(tmp_path, "half_adam", half=True, extra=ADAM.format(eps=""))
    updates = _result(broken, "updates")
    assert updates.status.value == "fail" and updates.metrics["half_eps"] == 4
    text = _messages(updates)
    assert "eps=1e-08, which rounds to 0 in float16" in text and "eps=1e-4" in text, text
    assert "torch.autocast" in text
    nan = _result(broken, "nan")
    assert nan.status.value == "fail" and "eps=1e-08 rounds to 0 in float16" in _messages(nan), _messages(nan)


def test_half_weights_with_eps_1e4_and_float32_weights_with_1e8_stay_clean(tmp_path):
    for name, half, eps in (("half_eps4", True, ", eps=1e-4"), ("float_eps8", False, "")):
        twin = _file(tmp_path, name, half=half, extra=ADAM.format(eps=eps))
        for probe in ("updates", "nan"):
            result = _result(twin, probe)
            assert result.status.value == "pass", (name, probe, _messages(result))
            assert "eps" not in _messages(result)


def test_half_eps_groups_reads_the_optimizer_settings():
    half = torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))
    full = torch.nn.Parameter(torch.zeros(3))
    assert half_eps_groups(torch.optim.Adam([half])) != []
    assert half_eps_groups(torch.optim.AdamW([half], eps=1e-4)) == []
    assert half_eps_groups(torch.optim.Adam([full])) == []
    assert half_eps_groups(torch.optim.Adagrad([half])) != []  # eps=1e-10
    assert half_eps_groups(torch.optim.SGD([half], lr=0.1)) == []  # no eps at all


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; run benchmarks/gpu_check.sh")
def test_fp16_overflow_is_named_on_cuda_and_the_twin_stays_clean(tmp_path):
    broken = _file(tmp_path, "overflow_cuda", scale=1000.0)
    result = _result(broken, "nan", autocast="fp16", device="cuda")
    assert result.status.value == "fail" and OVERFLOW in _messages(result), _messages(result)
    twin = _file(tmp_path, "twin_cuda", scale=1.0)
    assert _result(twin, "nan", autocast="fp16", device="cuda").status.value == "pass"
