"""The four core probes (params, data, nan, gradients): numbers against naive re-computations,
healthy models pass and broken ones fail on several seeds."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nndiag
from nndiag.report import Status

SEEDS = [0, 1, 2]


def run(probe, seed=0, **kw):
    return nndiag.check_probe(probe, seed=seed, **kw)


def classification_batch(n=64, d=20, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)


class FunctionalMLP(nn.Module):
    """Tutorial style: activations as function calls."""

    def __init__(self, d=20, c=5, bug=None):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(d, 32), nn.Linear(32, 32), nn.Linear(32, c)
        self.bug = bug

    def forward(self, x):
        x = torch.relu(self.fc1(x))
        if self.bug == "detach":
            x = x.detach()
        x = F.relu(self.fc2(x))
        x = self.fc3(x)
        if self.bug == "log-softmax":
            return torch.log(torch.softmax(x * 1e4, dim=1))
        if self.bug == "sqrt-zero-grad":  # finite forward, infinite gradient of sqrt at 0
            return x * torch.sqrt(torch.zeros_like(x[:, :1]) + (self.fc3.bias[:1] - self.fc3.bias[:1]))
        return x


# ---- params ---------------------------------------------------------------------------------------
def naive_counts(model):
    seen, trainable, frozen = set(), 0, 0
    for p in model.parameters():  # Module.parameters() already de-duplicates shared tensors
        if id(p) in seen:
            continue
        seen.add(id(p))
        trainable += p.numel() if p.requires_grad else 0
        frozen += 0 if p.requires_grad else p.numel()
    return trainable, frozen


class Tied(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.body = nn.Linear(16, 16)
        self.out = nn.Linear(16, 50, bias=False)
        self.out.weight = self.emb.weight  # tied

    def forward(self, x):
        return self.out(torch.relu(self.body(self.emb(x)))).mean(1)


def test_params_counts_match_naive_and_tied_weights_count_once():
    import torchinfo

    model = Tied()
    batch = (torch.randint(0, 50, (4, 7)), torch.randint(0, 50, (4,)))
    r = run("params", model=model, batch=batch, loss_fn=nn.CrossEntropyLoss())
    trainable, frozen = naive_counts(model)
    assert r.metrics["total"] == trainable + frozen == 50 * 16 + 16 * 16 + 16
    assert r.metrics["trainable"] == trainable and r.metrics["frozen"] == frozen == 0
    out_row = next(l for l in r.data["layers"] if l["layer"] == "out")
    assert out_row["shared_with"] == ["emb"] and out_row["trainable"] == 0
    # torchinfo 1.8 counts the tied weight twice: the reason params does its own counting.
    assert torchinfo.summary(model, input_data=batch[0], verbose=0).total_params > r.metrics["total"]


def test_params_frozen_layer_is_a_fact_and_expected_total():
    def model():
        m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        m[0].requires_grad_(False)
        return m

    batch = classification_batch(8, 4, 3)
    r = run("params", model=model, batch=batch, loss_fn=nn.CrossEntropyLoss())
    # A frozen layer among trainable ones is a fact (a frozen backbone), not a warning (issue 9).
    assert r.status is Status.PASS and r.findings[0].where == "0"
    assert r.findings[0].severity is Status.PASS and "frozen" in r.findings[0].message
    assert r.metrics["frozen"] == 40 and r.metrics["trainable"] == 27
    r = run("params", model=model, batch=batch, loss_fn=nn.CrossEntropyLoss(), params={"expected_total": 68})
    assert r.status is Status.FAIL and r.findings[-1].value == 67 and r.findings[-1].limit == 68
    r = run("params", model=model, batch=batch, loss_fn=nn.CrossEntropyLoss(), params={"expected_total": 67})
    assert r.status is Status.PASS


def test_params_all_frozen_fails():
    def model():
        return nn.Linear(4, 3).requires_grad_(False)

    r = run("params", model=model, batch=classification_batch(8, 4, 3), loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL and "frozen" in r.findings[0].message


# ---- data -----------------------------------------------------------------------------------------
def test_data_metrics_match_naive():
    x, y = classification_batch()
    r = run("data", model=FunctionalMLP, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS
    assert math.isclose(r.metrics["input_mean"], float(x.mean()), rel_tol=1e-5, abs_tol=1e-6)
    assert math.isclose(r.metrics["input_std"], float(x.std()), rel_tol=1e-5)
    assert r.metrics["target_max"] == int(y.max()) and r.metrics["classes"] == 5
    assert r.metrics["distinct_targets"] == len(torch.unique(y))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("bug,severity,where", [
    ("nan-input", Status.FAIL, "inputs"),
    ("out-of-range", Status.FAIL, "targets"),
    ("negative-class", Status.FAIL, "targets"),
    ("unscaled", Status.PASS, "inputs"),  # issue 9: a recorded fact; saturation/overfit judge it
    ("constant-targets", Status.FAIL, "targets"),  # issue 9: a fail, not a warn
])
def test_data_flags_broken_batches(seed, bug, severity, where):
    x, y = classification_batch(seed=seed)
    if bug == "nan-input":
        x[3, 2] = float("nan")
    elif bug == "out-of-range":
        y[0] = 5  # 5 classes: valid ids are 0..4
    elif bug == "negative-class":
        y[1] = -1
    elif bug == "unscaled":
        x = (x.abs() * 80).clamp(0, 255).round()  # raw 0-255 pixels
    elif bug == "constant-targets":
        y = torch.zeros_like(y)  # catalogue 59325381: labels / 255 -> all 0
    r = run("data", seed=seed, model=FunctionalMLP, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert r.status is severity, r.summary
    assert any(f.where == where and f.severity is severity for f in r.findings)


def test_data_bce_targets_out_of_unit_range_fail():
    x = torch.randn(16, 4)
    y = torch.randint(0, 3, (16, 1)).float()  # 0, 1, 2 fed to BCE
    r = run("data", model=lambda: nn.Sequential(nn.Linear(4, 1), nn.Sigmoid()), batch=(x, y), loss_fn=nn.BCELoss())
    assert r.status is Status.FAIL and "[0, 1]" in r.findings[0].message


@pytest.mark.parametrize("seed", SEEDS)
def test_data_healthy_passes(seed):
    r = run("data", seed=seed, model=FunctionalMLP, batch=classification_batch(seed=seed),
            loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS, r.findings


# ---- nan --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", SEEDS)
def test_nan_healthy_passes(seed):
    r = run("nan", seed=seed, model=FunctionalMLP, batch=classification_batch(seed=seed),
            loss_fn=nn.CrossEntropyLoss())
    # the 20-step shared pass, continued by the long watch when the model fits its FLOP budget
    assert r.status is Status.PASS and r.metrics["steps_run"] == max(20, r.metrics["watch_steps"])


@pytest.mark.parametrize("seed", SEEDS)
def test_nan_names_functional_producer_inside_forward(seed):
    r = run("nan", seed=seed, model=lambda: FunctionalMLP(bug="log-softmax"),
            batch=classification_batch(seed=seed), loss_fn=nn.NLLLoss())
    assert r.status is Status.FAIL
    (f,) = r.findings
    assert f.where == "<model> (FunctionalMLP)" and "torch.log" in f.message and "log_softmax" in f.message
    assert r.metrics["first_nonfinite_step"] == 0


class ExplodingConv(nn.Module):
    """A conv net whose third conv's weights are huge: its output overflows to Inf (float32)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.Conv2d(4, 4, 3))
        with torch.no_grad():
            self.features[3].weight.fill_(3e38)  # any weighted sum > 1.2 overflows
        self.head = nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


def test_nan_names_module_producer_not_propagator():
    batch = (torch.rand(4, 1, 8, 8) + 1, torch.randint(0, 3, (4,)))
    r = run("nan", model=ExplodingConv, batch=batch, loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    assert r.findings[0].where == "features.3 (Conv2d)", r.findings[0].message


def test_nan_after_some_updates_reports_the_step():
    # Plain SGD with a huge learning rate on unscaled regression targets: finite at first,
    # diverges to Inf after a few updates (catalogue 48934338: LR too high).
    x = torch.linspace(0, 5, 50).unsqueeze(1)
    y = 5 * x ** 2
    r = run("nan", model=lambda: nn.Linear(1, 1), batch=(x, y), loss_fn=nn.MSELoss(),
            optimizer=lambda p: torch.optim.SGD(p, lr=1.0))
    assert r.status is Status.FAIL
    assert 5 <= r.metrics["first_nonfinite_step"] < 20  # finite at first, Inf after some updates
    assert r.data["loss_curve"][0] < r.data["loss_curve"][-1]


def test_nan_in_inputs_and_parameters():
    x, y = classification_batch()
    x[0, 0] = float("inf")
    r = run("nan", model=FunctionalMLP, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL and r.findings[0].where == "inputs"

    def bad_init():
        m = FunctionalMLP()
        with torch.no_grad():
            m.fc2.weight[0, 0] = float("nan")
        return m

    r = run("nan", model=bad_init, batch=classification_batch(), loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL and r.findings[0].where == "fc2.weight"


def test_nan_in_loss_function():
    def bad_loss(output, target):
        return torch.log(output - output).mean()  # log(0) in the loss, not the model

    r = run("nan", model=FunctionalMLP, batch=classification_batch(), loss_fn=bad_loss)
    assert r.status is Status.FAIL and r.findings[0].where == "loss"


def test_nan_first_in_gradient():
    r = run("nan", model=lambda: FunctionalMLP(bug="sqrt-zero-grad"), batch=classification_batch(),
            loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    assert r.findings[0].where == "fc3.bias" and "gradient" in r.findings[0].message


def test_nan_with_user_train_step():
    def train_step(model, optimizer, batch):
        optimizer.zero_grad()
        x, y = batch
        loss = F.nll_loss(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    r = run("nan", model=lambda: FunctionalMLP(bug="log-softmax"), batch=classification_batch(),
            train_step=train_step)
    assert r.status is Status.FAIL and "torch.log" in r.findings[0].message


# ---- gradients ------------------------------------------------------------------------------------------
def test_gradient_statistics_match_naive_autograd():
    batch = classification_batch()
    r = run("gradients", model=FunctionalMLP, batch=batch, loss_fn=nn.CrossEntropyLoss(),
            optimizer=lambda p: torch.optim.SGD(p, lr=0.0), gradients={"steps": 1})
    torch.manual_seed(0)
    model = FunctionalMLP()
    nn.CrossEntropyLoss()(model(batch[0]), batch[1]).backward()
    rows = {row["param"]: row for row in r.data["layers"]}
    for name, p in model.named_parameters():
        g = p.grad
        assert math.isclose(rows[name]["grad_norm"], float(g.norm()), rel_tol=1e-5)
        assert math.isclose(rows[name]["mean_abs_grad"], float(g.abs().mean()), rel_tol=1e-5)
        assert math.isclose(rows[name]["max_abs_grad"], float(g.abs().max()), rel_tol=1e-5)
        assert rows[name]["update_ratio"] == 0.0  # lr 0
    total = math.sqrt(sum(float(p.grad.norm()) ** 2 for p in model.parameters()))
    assert math.isclose(r.metrics["total_grad_norm"], total, rel_tol=1e-5)


def test_update_ratio_is_lr_times_grad_over_weight():
    batch = classification_batch()
    r = run("gradients", model=FunctionalMLP, batch=batch, loss_fn=nn.CrossEntropyLoss(),
            optimizer=lambda p: torch.optim.SGD(p, lr=0.1), gradients={"steps": 1})
    torch.manual_seed(0)
    model = FunctionalMLP()
    nn.CrossEntropyLoss()(model(batch[0]), batch[1]).backward()
    row = next(x for x in r.data["layers"] if x["param"] == "fc2.weight")
    expected = 0.1 * float(model.fc2.weight.grad.norm()) / float(model.fc2.weight.norm())
    assert math.isclose(row["update_ratio"], expected, rel_tol=1e-5)
    assert math.isclose(row["step_update_ratio"], expected, rel_tol=1e-4)  # SGD: the step is lr*g


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_healthy_passes(seed):
    r = run("gradients", seed=seed, model=FunctionalMLP, batch=classification_batch(seed=seed),
            loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS, [f.message for f in r.findings]


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_detached_layer_fails_naming_it(seed):
    r = run("gradients", seed=seed, model=lambda: FunctionalMLP(bug="detach"),
            batch=classification_batch(seed=seed), loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    assert {f.where for f in r.findings} == {"fc1.weight", "fc1.bias"}


class DeepSigmoid(nn.Module):
    """Catalogue 39217567-style: a deep stack of sigmoids with a small init: gradients vanish."""

    def __init__(self, depth=12):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(16, 16) for _ in range(depth))
        self.out = nn.Linear(16, 2)
        for layer in self.layers:
            nn.init.normal_(layer.weight, std=0.05)

    def forward(self, x):
        for layer in self.layers:
            x = torch.sigmoid(layer(x))
        return self.out(x)


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_deep_sigmoid_vanishes(seed):
    r = run("gradients", seed=seed, model=DeepSigmoid, batch=classification_batch(32, 16, 2, seed),
            loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    assert any(f.metric == "max_abs_grad" and f.where.startswith("layers.0") for f in r.findings)


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_exploding_with_unscaled_targets(seed):
    # Catalogue 52800582: y = x^4 with no scaling; MSE gradients are enormous.
    x = torch.linspace(-100, 99.5, 400).unsqueeze(1)
    r = run("gradients", seed=seed, model=lambda: nn.Sequential(nn.Linear(1, 50), nn.Sigmoid(), nn.Linear(50, 1)),
            batch=(x, x ** 4), loss_fn=nn.MSELoss())
    assert r.status is Status.FAIL
    assert any(f.metric == "max_abs_grad" and f.value > 1e6 for f in r.findings)


def test_gradients_all_zero_fails():
    class ZeroPath(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(8, 8), nn.Linear(8, 3)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x) - 1e6))  # every unit dead

    r = run("gradients", model=ZeroPath, batch=classification_batch(16, 8, 3), loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    assert {f.where for f in r.findings if f.value == 0.0} >= {"fc1.weight", "fc1.bias", "fc2.weight"}


class ConvBatchNorm(nn.Module):
    """Healthy: Conv2d with its default bias=True feeding BatchNorm2d (the bias gets a zero gradient)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.head = nn.Conv2d(1, 8, 3), nn.BatchNorm2d(8), nn.Linear(8, 3)

    def forward(self, x):
        return self.head(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_bias_before_batchnorm_is_not_a_false_alarm(seed):
    g = torch.Generator().manual_seed(seed)
    batch = (torch.randn(16, 1, 8, 8, generator=g), torch.randint(0, 3, (16,), generator=g))
    r = run("gradients", seed=seed, model=ConvBatchNorm, batch=batch, loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS, [f.message for f in r.findings]
    (note,) = r.findings
    assert note.where == "conv.bias" and "redundant" in note.message
    assert "6/6 parameters" in r.summary  # the exempted bias still counts as connected


# ---- gradients: issue 9's false alarms (healthy, must pass) and misses (must fail) ------------------
class AttentionKeyBias(nn.Module):
    """BERT-style self-attention with separate q/k/v projections: softmax cancels the key bias
    (q . b_k is the same for every key), so its gradient is zero up to rounding."""

    def __init__(self, d=16, c=3):
        super().__init__()
        self.q, self.k, self.v, self.out = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, c)

    def forward(self, x):  # x: (N, T, d)
        att = torch.softmax(self.q(x) @ self.k(x).transpose(1, 2) / 4.0, dim=-1)
        return self.out((att @ self.v(x)).mean(1))


class BnThroughPointwise(nn.Module):
    """EfficientNet/MobileNet-style: BatchNorm -> 1x1 conv (no bias) -> BatchNorm. The first
    BatchNorm's bias adds a per-channel constant that the 1x1 conv mixes into a per-channel constant,
    which the second BatchNorm subtracts: its gradient is zero by construction."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, bias=False)
        self.bn1, self.pw, self.bn2 = nn.BatchNorm2d(8), nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        x = self.bn2(self.pw(self.bn1(self.conv(x))))
        return self.head(torch.relu(x).mean((2, 3)))


class TinyBiasHead(nn.Module):
    """A localisation head whose zero-initialised bias gets a ~1e-9 gradient at first and trains."""

    def __init__(self):
        super().__init__()
        self.body, self.box = nn.Linear(20, 32), nn.Linear(32, 5)
        self.offset = nn.Parameter(torch.zeros(5))

    def forward(self, x):
        return self.box(torch.relu(self.body(x))) + 1e-9 * self.offset


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_removed_or_tiny_biases_are_pass_facts(seed):
    g = torch.Generator().manual_seed(seed)
    cases = [
        (AttentionKeyBias, (torch.randn(8, 6, 16, generator=g), torch.randint(0, 3, (8,), generator=g)), "k.bias"),
        (BnThroughPointwise, (torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)), "bn1.bias"),
        (TinyBiasHead, classification_batch(seed=seed), "offset"),
    ]
    for model, batch, name in cases:
        r = run("gradients", seed=seed, model=model, batch=batch, loss_fn=nn.CrossEntropyLoss())
        assert r.status is Status.PASS, (model.__name__, [f.message for f in r.findings])
        notes = [f for f in r.findings if f.severity is Status.PASS and name in f.message]
        assert notes and notes[0].value < 1e-7, (model.__name__, r.findings)


def test_gradients_a_weight_that_vanishes_relative_to_the_network_still_fails():
    # the weights are judged: DeepSigmoid's first weight is 1e-4 of the largest and below 1e-7
    r = run("gradients", model=DeepSigmoid, batch=classification_batch(32, 16, 2), loss_fn=nn.CrossEntropyLoss())
    fails = [f for f in r.findings if f.severity is Status.FAIL and f.metric == "max_abs_grad"]
    assert fails and all(f.where.endswith("weight") for f in fails)
    top = r.metrics["largest_weight_max_abs_grad"]
    assert all(f.value < 1e-4 * top for f in fails)


def test_gradients_cleared_by_the_users_train_step_are_not_disconnected():
    # issue 9: a GAN's train_step clears the discriminator's gradients before the generator's step
    class Gan(nn.Module):
        def __init__(self):
            super().__init__()
            self.G, self.D = nn.Linear(4, 2), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))

        def forward(self, z):
            return self.G(z)

    bce = nn.BCEWithLogitsLoss()

    def train_step(model, opt, batch):
        x, n = batch[0], batch[0].shape[0]
        z = torch.randn(n, 4)
        opt.zero_grad()
        d = bce(model.D(x), torch.ones(n, 1)) + bce(model.D(model.G(z).detach()), torch.zeros(n, 1))
        d.backward()
        opt.step()
        opt.zero_grad()
        bce(model.D(model.G(z)), torch.ones(n, 1)).backward()
        for p in model.D.parameters():
            p.grad = None
        opt.step()
        return d.item()

    real = torch.randn(32, 2, generator=torch.Generator().manual_seed(0)) + 2.0
    r = run("gradients", model=Gan, batch=(real, torch.zeros(32)), train_step=train_step)
    assert r.status is Status.PASS, [f.message for f in r.findings]
    (fact,) = [f for f in r.findings if f.metric == "grad_cleared_by_train_step"]
    assert fact.value == 4 and "D." in fact.message  # D's 4 tensors changed: trained


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_large_by_design_is_a_fact_with_adam(seed):
    # a summed loss over a batch of 256 (an ELBO-style sum) gives |g| in the hundreds: Adam
    # normalises it, and the steps stay small, so it is recorded, not warned
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(256, 20, generator=g) * 30, torch.randn(256, 5, generator=g) * 30
    r = run("gradients", seed=seed, model=lambda: nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Linear(32, 5)),
            batch=(x, y), loss_fn=nn.MSELoss(reduction="sum"))
    assert r.status is Status.PASS, [f.message for f in r.findings]
    assert r.metrics["max_abs_grad"] > 100
    assert any(f.metric == "large_grad" and f.severity is Status.PASS for f in r.findings)
    assert r.metrics["median_update_ratio"] < 0.5


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_lr_far_too_high_blames_the_learning_rate(seed):
    # issue 9: at SGD lr 5 the probe blamed "unscaled inputs or a summed loss"; the healthy XOR
    # (Adam 0.1 on a tiny net) moves its weights by 0.36-0.47 of their norm per step, so the bands
    # start at 1: here lr 20
    r = run("gradients", seed=seed, model=FunctionalMLP, batch=classification_batch(seed=seed),
            loss_fn=nn.CrossEntropyLoss(), optimizer=lambda p: torch.optim.SGD(p, lr=20.0))
    assert r.status in (Status.WARN, Status.FAIL), [f.message for f in r.findings]
    (f,) = [f for f in r.findings if f.metric == "median_update_ratio"]
    assert f.value > 1.0 and "learning rate is too high" in f.message and "lr 20" in f.message
    assert "Unscaled inputs or targets, or a summed" not in f.message
    # the ratio against a naive re-computation of one SGD step: |lr * g| / |w| per weight, median
    torch.manual_seed(seed)
    model = FunctionalMLP()
    x, y = classification_batch(seed=seed)
    nn.CrossEntropyLoss()(model(x), y).backward()
    first = sorted(20.0 * float(m.weight.grad.norm()) / float(m.weight.norm())
                   for m in (model.fc1, model.fc2, model.fc3))[1]
    rows = {row["param"]: row for row in r.data["layers"]}
    assert rows["fc2.weight"]["max_step_update_ratio"] >= 0  # recorded per parameter
    assert f.value >= first * 0.99  # the max over steps is at least the first step's


@pytest.mark.parametrize("seed", SEEDS)
def test_gradients_constant_init_names_identical_units(seed):
    # issue 9 (a miss): every weight set to the same constant; the units stay copies of one another
    def constant():
        m = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 5))
        for layer in m:
            if isinstance(layer, nn.Linear):
                nn.init.constant_(layer.weight, 0.05)
                nn.init.zeros_(layer.bias)
        return m

    r = run("gradients", seed=seed, model=constant, batch=classification_batch(seed=seed), loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    assert {f.where for f in r.findings if f.metric == "identical_units"} == {"0.weight", "2.weight"}

    def zero_head():  # a zero-initialised head has identical rows too, but its gradient breaks the tie
        m = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 5))
        nn.init.zeros_(m[2].weight)
        return m

    r = run("gradients", seed=seed, model=zero_head, batch=classification_batch(seed=seed), loss_fn=nn.CrossEntropyLoss())
    assert not [f for f in r.findings if f.metric == "identical_units"], r.findings
