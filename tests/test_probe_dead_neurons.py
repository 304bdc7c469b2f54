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
    x, y = torch.randn(64, 1, 6, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
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


# ---- issue 9: dead at init is judged by what is still dead after a few steps -----------------
class Gated(nn.Module):
    """Pooled, all-positive features into a narrow ReLU layer (a squeeze-excitation bottleneck):
    a quarter to a half of its units are inactive at default init, and it trains."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, padding=1)
        self.squeeze = nn.Linear(16, 8)
        self.excite = nn.Linear(8, 16)
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        s = h.mean((2, 3))
        gate = torch.sigmoid(self.excite(torch.relu(self.squeeze(s))))
        return self.head((h * gate[:, :, None, None]).mean((2, 3)))


def image_data(seed=0, n=256):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, 6, 6, generator=g), torch.randint(0, 4, (n,), generator=g)


def naive_still_dead(model, x, y, steps, pre_of):
    """Dead at init and still dead after `steps` Adam(1e-3) steps on (x, y), recomputed by hand."""
    with torch.no_grad():
        dead0 = (pre_of(model, x) > 0).sum(0) == 0
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        dead1 = (pre_of(model, x) > 0).sum(0) == 0
    return int(dead0.sum()), int((dead0 & dead1).sum())


@pytest.mark.parametrize("seed", SEEDS)
def test_inactive_at_init_but_trainable_is_a_pass_fact(seed):
    x, y = image_data(seed)
    torch.manual_seed(seed)
    model = Gated()  # default init: 25-62% of the bottleneck inactive on seeds 0-2
    res = run(seed, model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.PASS, res.findings
    layer = next(r for r in res.data["layers"] if r["layer"].startswith("squeeze"))
    steps = res.metrics["remeasured_after_steps"]
    assert layer["dead_fraction"] > 0.2 and steps == 10  # re-measured: not vacuous
    dead, still = naive_still_dead(copy_of(model), x, y, steps,
                                   lambda m, v: m.squeeze(torch.relu(m.conv(v)).mean((2, 3))))
    assert (layer["dead"], layer["still_dead"]) == (dead, still)
    assert layer["default_init_dead_fraction"] == layer["dead_fraction"]  # it is the default init
    facts = [f for f in res.findings if f.severity == Status.PASS and f.metric == "still_dead_fraction"]
    assert facts and "still inactive after 10 training step(s)" in facts[0].message


def copy_of(model):
    import copy
    return copy.deepcopy(model)


@pytest.mark.parametrize("act", [nn.GELU, nn.SiLU, nn.LeakyReLU, nn.ELU])
def test_leaky_family_is_never_dead(act):
    x, y = data()
    model = nn.Sequential(nn.Linear(12, 16), act(), nn.Linear(16, 4))
    with torch.no_grad():
        model[0].bias.fill_(-8.0)  # every unit on its negative side
    res = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.PASS, res.findings
    (layer,) = res.data["layers"]
    assert layer["leaky"] and layer["dead_fraction"] == 1.0
    assert [f.severity for f in res.findings] == [Status.PASS]
    assert "not dead" in res.findings[0].message
    assert res.metrics["worst_dead_fraction"] == 0.0  # only relu/relu6 count


@pytest.mark.parametrize("seed", SEEDS)
def test_born_dead_and_staying_dead_fails_with_the_default_init_baseline(seed):
    x, y = data(seed=seed)
    res = run(seed, model=Net(bias=-3.0), batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.FAIL
    (f,) = [f for f in res.findings if f.severity == Status.FAIL]
    assert f.metric == "still_dead_fraction" and f.value > 0.5
    assert "default init of the same architecture leaves" in f.message
    assert "the initialisation is the cause" in f.message
    layer = next(r for r in res.data["layers"] if r["layer"] == "fc2 -> relu6")
    assert layer["default_init_dead_fraction"] < 0.5 < layer["still_dead_fraction"]


def test_without_training_steps_only_a_fully_dead_layer_fails():
    x, y = data()

    def broken_step(model, optimizer, batch):
        raise RuntimeError("this step needs a closure")

    half = Net(bias=None)
    with torch.no_grad():
        half.fc2.bias[:4] = -10.0  # 4 of 8 relu6 units dead
    res = run(model=half, batch=(x, y), train_step=broken_step)
    assert res.status == Status.PASS
    assert any("could not train a few steps" in f.message for f in res.findings)
    res = run(model=Net(bias=-10.0), batch=(x, y), train_step=broken_step)
    assert res.status == Status.FAIL and "not one unit of the layer is alive" in res.findings[0].message


def test_own_step_with_a_forward_the_pass_cannot_call_skips_with_the_reason():
    class NeedsHidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 4)

        def forward(self, x, hidden):
            return torch.relu(self.fc(x)) + hidden

    def step(model, optimizer, batch):
        x, y = batch
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x, torch.zeros(1)), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    res = run(model=NeedsHidden(), batch=data(), train_step=step)
    assert res.status == Status.SKIP and "your train_step calls it its own way" in res.summary


ZOO = Path(__file__).resolve().parents[1] / "reference_models" / "zoo"


@pytest.mark.parametrize("seed", SEEDS)
def test_squeeze_excitation_gate_left_with_one_unit_is_not_a_collapse(seed):
    """zoo/healthy/squeeze_excitation_cnn.py: a 4-unit SE bottleneck keeps 1 live unit on seeds
    0 and 2 (default init, and it trains); only a chain of such layers is a collapse."""
    res = nndiag.check(ZOO / "healthy" / "squeeze_excitation_cnn.py", probes=["dead-neurons"],
                       seed=seed).subjects[0].result("dead-neurons")
    assert res.status == Status.PASS, res.findings
    assert res.metrics["one_live_unit_layers"] <= 1
