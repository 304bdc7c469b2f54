"""dead-neurons: per-layer dead fractions against a naive re-computation, functional and module
activations, healthy models pass and broken ones fail on seeds 0-2, the user's model untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nndiag
from nndiag.report import Status

SEEDS = [0, 1, 2]
BROKEN = Path(__file__).resolve().parents[1] / "reference_models" / "broken"
REF = Path(__file__).resolve().parents[1] / "reference_models"


def run(seed=0, **kw):
    return nndiag.check_probe("dead-neurons", seed=seed, **kw)


def data(n=256, d=12, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)


class Net(nn.Module):
    """Three activation styles: a module, a function call and a tensor method; optional bias bug."""

    def __init__(self, bias=None):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(12, 16), nn.Linear(16, 8), nn.Linear(8, 4)
        self.act = nn.ReLU()
        if bias is not None:
            nn.init.constant_(self.fc2.bias, bias)

    def forward(self, x):
        x = self.act(self.fc1(x))
        x = F.relu6(self.fc2(x))
        return self.fc3(x)


def test_numbers_match_naive_recomputation():
    x, y = data()
    model = Net(bias=-0.6)
    res = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    layers = {r["layer"]: r for r in res.data["layers"]}
    assert set(layers) == {"fc1 -> act (ReLU)", "fc2 -> relu6"}
    with torch.no_grad():
        h1 = model.fc1(x)
        h2 = model.fc2(torch.relu(h1))
    for name, pre in (("fc1 -> act (ReLU)", h1), ("fc2 -> relu6", h2)):
        dead = int(((pre > 0).sum(0) == 0).sum())
        assert layers[name]["dead"] == dead
        assert layers[name]["units"] == pre.shape[1]
        assert layers[name]["dead_fraction"] == pytest.approx(dead / pre.shape[1])
    assert layers["fc2 -> relu6"]["dead"] > 0  # the negative bias kills some units: not vacuous
    assert res.metrics["dead_units"] == sum(r["dead"] for r in res.data["layers"])


def test_conv_channels_and_tensor_method_are_units():
    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 6, 3)
            nn.init.constant_(self.conv.bias, -10.0)
            with torch.no_grad():
                self.conv.bias[:2] = 10.0  # channels 0 and 1 alive, 2-5 dead
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            return self.fc(self.conv(x).relu().mean((2, 3)))

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 6, 6, generator=g) * 0.1, torch.randint(0, 3, (64,), generator=g)
    res = run(model=ConvNet(), batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    (layer,) = res.data["layers"]
    assert layer["layer"] == "conv -> relu" and layer["units"] == 6 and layer["dead"] == 4
    assert res.status == Status.FAIL
    assert res.findings[0].where == "conv"


def test_relu_rnn_hidden_units_are_watched():
    class RNNNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.RNN(3, 8, nonlinearity="relu", batch_first=True)
            self.fc = nn.Linear(8, 1)

        def forward(self, x):
            return self.fc(self.rnn(x)[0][:, -1])

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 5, 3, generator=g), torch.randn(32, 1, generator=g)
    model = RNNNet()
    res = run(model=model, batch=(x, y), loss_fn=nn.MSELoss())
    (layer,) = res.data["layers"]
    with torch.no_grad():
        out = model.rnn(x)[0]
    assert layer["units"] == 8 and layer["dead"] == int(((out > 0).sum((0, 1)) == 0).sum())


@pytest.mark.parametrize("seed", SEEDS)
def test_healthy_models_pass(seed):
    x, y = data(seed=seed)
    res = run(seed, model=Net, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.PASS, res.findings


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_mlp_passes(seed, mnist_available):
    res = nndiag.check(REF / "mlp.py", probes=["dead-neurons"], seed=seed).subjects[0].result("dead-neurons")
    assert res.status == Status.PASS, res.findings
    assert {r["layer"] for r in res.data["layers"]} == {"fc1 -> relu", "fc2 -> relu"}
    assert res.metrics["samples"] >= 256


def test_xor_warns_at_most_and_says_why():
    for seed in SEEDS:
        res = nndiag.check(REF / "xor.py", probes=["dead-neurons"], seed=seed).subjects[0].result("dead-neurons")
        assert res.status in (Status.PASS, Status.WARN)
        assert res.metrics["distinct_samples"] == 4


def test_few_distinct_inputs_downgrade_unless_totally_dead():
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = torch.tensor([0, 1, 1, 0])

    def net(bias):
        m = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2))
        with torch.no_grad():
            m[0].weight.fill_(1.0)
            m[0].bias.copy_(torch.tensor(bias))
        return m

    three_dead = run(model=net([1.0, -5.0, -5.0, -5.0]), batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert three_dead.status == Status.WARN  # 75% dead, but on 4 inputs only
    all_dead = run(model=net([-5.0] * 4), batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert all_dead.status == Status.FAIL


def test_no_relu_skips_with_reason():
    x, y = data()
    res = run(model=nn.Sequential(nn.Linear(12, 8), nn.Tanh(), nn.Linear(8, 4)), batch=(x, y),
              loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.SKIP and "no ReLU-family activation" in res.summary


@pytest.mark.parametrize("name", ["dead_relu_negative_bias", "dead_relu_deep_narrow"])
@pytest.mark.parametrize("seed", SEEDS)
def test_broken_models_fail(name, seed):
    res = nndiag.check(BROKEN / f"{name}.py", probes=["dead-neurons"], seed=seed).subjects[0].result("dead-neurons")
    assert res.status == Status.FAIL, res.summary
    assert any(f.value > 0.5 for f in res.findings if f.severity == Status.FAIL)


def test_user_model_unchanged():
    x, y = data()
    model = Net()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [m.training for m in model.modules()]
    hooks = sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())
    run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [m.training for m in model.modules()] == flags
    assert sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules()) == hooks
