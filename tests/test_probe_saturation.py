"""saturation: saturated fractions against a naive re-computation (module and functional sigmoid,
tanh, softmax, tanh RNN), healthy models pass and broken ones fail on seeds 0-2, model untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.report import Status

SEEDS = [0, 1, 2]
BROKEN = Path(__file__).resolve().parents[1] / "reference_models" / "broken"
REF = Path(__file__).resolve().parents[1] / "reference_models"


def run(seed=0, **kw):
    return nndiag.check_probe("saturation", seed=seed, **kw)


def data(n=256, d=6, seed=0, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g) * scale, torch.randint(0, 3, (n,), generator=g)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(6, 10), nn.Linear(10, 8), nn.Linear(8, 3)
        self.sig = nn.Sigmoid()

    def forward(self, x):
        x = self.sig(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


def naive(pre, limit=5.0, unit_fraction=0.85):
    beyond = (pre.abs() > limit).float()
    per_unit = beyond.mean(0)
    return float(beyond.mean()), int((per_unit > unit_fraction).sum())


def test_numbers_match_naive_recomputation():
    x, y = data(scale=4.0)
    model = Net()
    with torch.no_grad():
        model.fc1.weight.mul_(4.0)
    res = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    layers = {r["layer"]: r for r in res.data["layers"]}
    assert set(layers) == {"fc1 -> sig (Sigmoid)", "fc2 -> tanh"}
    with torch.no_grad():
        p1 = model.fc1(x)
        p2 = model.fc2(torch.sigmoid(p1))
    for name, pre in (("fc1 -> sig (Sigmoid)", p1), ("fc2 -> tanh", p2)):
        observed, stuck = naive(pre)
        assert layers[name]["observations_beyond"] == pytest.approx(observed)
        assert layers[name]["units_saturated"] == stuck
        assert layers[name]["saturated_fraction"] == pytest.approx(max(observed, stuck / pre.shape[1]))
    assert layers["fc1 -> sig (Sigmoid)"]["observations_beyond"] > 0.2  # not vacuous


def test_softmax_rows_and_size_one():
    class Soft(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.fc = nn.Linear(6, c)

        def forward(self, x):
            return self.fc(x).softmax(dim=1)

    x, y = data(scale=3.0)
    model = Soft(3)
    with torch.no_grad():
        model.fc.weight.mul_(5.0)
    res = run(model=model, batch=(x, y), loss_fn=nn.MSELoss())
    (row,) = res.data["layers"]
    with torch.no_grad():
        p = torch.softmax(model.fc(x), 1).max(1).values
    expected = float((p > 1 / (1 + torch.exp(torch.tensor(-5.0)))).float().mean())
    assert row["saturated_fraction"] == pytest.approx(expected) and row["rows"] == 256
    one = run(model=Soft(1), batch=(x, y.float().unsqueeze(1)), loss_fn=nn.MSELoss())
    assert one.status == Status.FAIL and "size 1" in one.findings[0].message


def test_tanh_rnn_hidden_units():
    class R(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(1, 4, batch_first=True)
            self.fc = nn.Linear(4, 1)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, 1, generator=g) * 20
    model = R()
    res = run(model=model, batch=(x, torch.zeros(64, 1)), loss_fn=nn.MSELoss())
    (row,) = res.data["layers"]
    with torch.no_grad():
        h = model.rnn(x)[0].double()
    pre = torch.atanh(h.clamp(-1 + 1e-15, 1 - 1e-15)).reshape(-1, 4)
    observed, stuck = naive(pre)
    assert row["observations_beyond"] == pytest.approx(observed, abs=1e-6)
    assert row["units"] == 4 and row["units_saturated"] == stuck


@pytest.mark.parametrize("seed", SEEDS)
def test_healthy_models_pass(seed):
    x, y = data(seed=seed)
    res = run(seed, model=Net, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.PASS, res.findings


@pytest.mark.parametrize("seed", SEEDS)
def test_xor_passes(seed):
    res = nndiag.check(REF / "xor.py", probes=["saturation"], seed=seed).subjects[0].result("saturation")
    assert res.status == Status.PASS, res.findings


def test_no_bounded_activation_skips():
    x, y = data()
    res = run(model=nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)), batch=(x, y),
              loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.SKIP and "nothing can saturate" in res.summary


@pytest.mark.parametrize("name", ["tanh_unscaled_inputs", "sigmoid_unscaled_pixels", "rnn_tanh_unscaled"])
@pytest.mark.parametrize("seed", SEEDS)
def test_broken_models_fail(name, seed):
    res = nndiag.check(BROKEN / f"{name}.py", probes=["saturation"], seed=seed).subjects[0].result("saturation")
    assert res.status == Status.FAIL, res.summary


def test_limit_setting_is_used():
    x, y = data(scale=4.0)
    model = Net()
    with torch.no_grad():
        model.fc1.weight.mul_(4.0)
    strict = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss(), saturation={"input_limit": 2.0})
    loose = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss(), saturation={"input_limit": 23.0})
    key = "fc1 -> sig (Sigmoid)"
    s = {r["layer"]: r for r in strict.data["layers"]}[key]["observations_beyond"]
    l = {r["layer"]: r for r in loose.data["layers"]}[key]["observations_beyond"]
    assert s > l > 0.0


def test_user_model_unchanged():
    x, y = data()
    model = Net()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


# ---- issue 9 ---------------------------------------------------------------------------------
class SigmoidOut(nn.Module):
    """A multi-label head whose output sigmoid is pinned by large logits (scale s)."""

    def __init__(self, s):
        super().__init__()
        self.fc = nn.Linear(6, 4)
        self.s = s

    def forward(self, x):
        return torch.sigmoid(self.s * self.fc(x))


def multilabel(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(256, 6, generator=g), (torch.rand(256, 4, generator=g) > 0.5).float()


@pytest.mark.parametrize("seed", SEEDS)
def test_saturated_output_sigmoid_under_bce_is_judged_where_float32_rounds(seed):
    x, y = multilabel(seed)
    torch.manual_seed(seed)
    model = SigmoidOut(12.0)  # 33-46% of |logit| beyond 5 (the +-5 rule fails it), 1-2% beyond 17
    res = run(seed, model=model, batch=(x, y), loss_fn=nn.BCELoss())
    assert res.status == Status.PASS, res.findings
    (row,) = res.data["layers"]
    with torch.no_grad():
        pre = model.s * model.fc(x)
    assert row["judged_at"] == 17.0
    assert row["saturated_fraction_at_input_limit"] == pytest.approx(
        max(naive(pre)[0], naive(pre)[1] / 4))
    assert row["saturated_fraction_at_input_limit"] > 0.3  # saturated by the usual bar: not vacuous
    assert row["observations_beyond"] == pytest.approx(naive(pre, limit=17.0)[0])
    (fact,) = res.findings
    assert fact.severity == Status.PASS and "takes its log (BCELoss)" in fact.message
    # The same output under MSE has no log to cancel the flat slope: a real failure.
    res = run(seed, model=model, batch=(x, y), loss_fn=nn.MSELoss())
    assert res.status in (Status.WARN, Status.FAIL)  # graded by the usual +-5 bar
    # Beyond float32's rounding point the BCE gradient is exactly 0: fails too.
    res = run(seed, model=SigmoidOut(200.0), batch=(x, y), loss_fn=nn.BCELoss())
    assert res.status == Status.FAIL


class Encoder(nn.Module):
    def __init__(self, extra_sigmoid=False):
        super().__init__()
        self.emb = nn.Linear(6, 16)
        self.enc = nn.TransformerEncoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.fc = nn.Linear(16, 3)
        self.extra = extra_sigmoid

    def forward(self, x):
        h = self.enc(self.emb(x).reshape(x.shape[0], 1, 16).expand(-1, 4, -1))
        if self.extra:
            h = h * torch.sigmoid(h)
        return self.fc(h.mean(1))


def test_fused_attention_softmax_is_said_to_be_unseen():
    x, y = data()
    res = run(model=Encoder(), batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.SKIP
    assert "fused kernel" in res.summary and "enc.self_attn" in res.summary
    assert "no softmax runs" not in res.summary and "nothing can saturate" not in res.summary
    res = run(model=Encoder(extra_sigmoid=True), batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.PASS
    facts = [f for f in res.findings if f.metric == "fused_attention_calls"]
    assert facts and facts[0].severity == Status.PASS and "not checked" in facts[0].message
