"""The updates probe: parameters change after one step, the optimizer holds them all, and a user
train_step clears gradients between steps."""

import copy

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.probes.updates import accumulation

REPO_BROKEN = "reference_models/broken"
LOSS = nn.CrossEntropyLoss()


def tiny(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))


def data(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)


def result(path=None, **kw):
    return nndiag.check_probe("updates", path, **kw)


def step_without_zero_grad(model, optimizer, batch):
    x, y = batch
    loss = LOSS(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def step_with_zero_grad(model, optimizer, batch):
    optimizer.zero_grad()
    return step_without_zero_grad(model, optimizer, batch)


# ---- (1) numbers against a naive re-computation -------------------------------------------------
def test_changed_count_matches_naive_torch_equal_loop():
    net, batch = tiny(), data()
    make = lambda p: torch.optim.SGD(list(p)[:2], lr=0.1)  # second layer left out
    r = result(model=net, batch=batch, loss_fn=LOSS, optimizer=make)
    # naive: the same step by hand on a copy
    m = copy.deepcopy(net)
    before = [p.detach().clone() for p in m.parameters()]
    opt = make(m.parameters())
    opt.zero_grad()
    LOSS(m(batch[0]), batch[1]).backward()
    opt.step()
    naive_changed = sum(not torch.equal(b, p) for b, p in zip(before, m.parameters()))
    held = {id(p) for g in opt.param_groups for p in g["params"]}
    naive_missing = sum(id(p) not in held for p in m.parameters())
    assert r.metrics["changed"] == naive_changed == 2
    assert r.metrics["missing_from_optimizer"] == naive_missing == 2
    assert r.status == "fail"
    assert "2.weight" in r.findings[0].message and "2.bias" in r.findings[0].message


def test_accumulation_coefficient_is_least_squares():
    g = torch.Generator().manual_seed(1)
    g1 = {"w": torch.randn(5, 3, generator=g), "b": torch.randn(3, generator=g)}
    gb = {"w": torch.randn(5, 3, generator=g), "b": torch.randn(3, generator=g)}
    g2 = {k: gb[k] + 0.3 * g1[k] for k in g1}
    a, residual, per = accumulation(g1, g2, gb, ["w", "b"])
    assert a == pytest.approx(0.3, abs=1e-6)
    assert residual == pytest.approx(0.0, abs=1e-6)
    assert per["w"] == pytest.approx(0.3) and per["b"] == pytest.approx(0.3)
    # naive: the gradient left by two calls without zero_grad is g(m0) + g(m1)
    net, (x, y) = tiny(), data()
    m = copy.deepcopy(net)
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    step_without_zero_grad(m, opt, (x, y))
    g_m0 = [p.grad.clone() for p in m.parameters()]
    m1 = copy.deepcopy(m)
    step_without_zero_grad(m, opt, (x, y))
    for p in m1.parameters():
        p.grad = None
    LOSS(m1(x), y).backward()
    for p, a0, p1 in zip(m.parameters(), g_m0, m1.parameters()):
        assert torch.allclose(p.grad, a0 + p1.grad, atol=1e-6)
    r = result(model=net, batch=(x, y), train_step=step_without_zero_grad,
               optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    assert r.metrics["accumulated_fraction"] == pytest.approx(1.0, abs=1e-4)
    assert r.metrics["zero_grad_residual"] < 1e-4


# ---- (2) healthy models pass ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_tiny_model_passes(seed):
    for kw in ({"loss_fn": LOSS}, {"train_step": step_with_zero_grad},
               {"loss_fn": LOSS, "optimizer": lambda p: torch.optim.AdamW(p, weight_decay=0.1)}):
        r = result(model=tiny(seed), batch=data(seed), seed=seed, **kw)
        assert r.status == "pass", (kw, r.summary, r.findings)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["xor", "lstm"])
def test_reference_models_pass(name, seed):
    r = result(path=f"reference_models/{name}.py", seed=seed)
    assert r.status == "pass", r.findings


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mlp", "cnn", "seq_classifier"])
def test_reference_image_models_pass(name, mnist_available):
    for seed in (0, 1, 2):
        r = result(path=f"reference_models/{name}.py", seed=seed)
        assert r.status == "pass", (seed, r.findings)


def test_zero_grad_at_end_of_train_step_passes():
    def step_clearing_at_end(model, optimizer, batch):
        loss = step_without_zero_grad(model, optimizer, batch)
        optimizer.zero_grad()
        return loss

    r = result(model=tiny(), batch=data(), train_step=step_clearing_at_end, loss_fn=LOSS)
    assert r.status == "pass", r.findings


# ---- (3) broken models fail -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name, needle", [
    ("digits_no_zero_grad", "does not clear gradients"),
    ("digits_no_optimizer_step", "changed none"),
    ("digits_missing_from_optimizer", "fc2.weight, fc2.bias"),
    ("digits_all_frozen", "frozen"),
])
def test_broken_variants_fail(name, needle, seed):
    r = result(path=f"{REPO_BROKEN}/{name}.py", seed=seed)
    assert r.status == "fail", r.summary
    assert any(needle in f.message for f in r.findings if f.severity == "fail"), r.findings


def test_detached_layer_fails(mnist_available):
    r = result(path=f"{REPO_BROKEN}/mlp_detached_layer.py")
    assert r.status == "fail"
    fail = [f for f in r.findings if f.severity == "fail"][0]
    assert fail.where == "fc1" and "no gradient" in fail.message


def test_unused_layer_fails_and_zero_gradient_only_warns():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.unused = nn.Linear(4, 8), nn.Linear(8, 3), nn.Linear(2, 2)
            self.gate = nn.Parameter(torch.ones(3))

        def forward(self, x):
            return self.b(torch.relu(self.a(x))) + 0 * self.gate

    r = result(model=Net(), batch=data(), loss_fn=LOSS)
    sev = {f.where: f.severity for f in r.findings}
    assert sev == {"unused": "fail", "<model>": "warn"}, r.findings


def test_optimizer_built_for_another_model_fails():
    other = tiny(5)
    r = result(model=tiny(), batch=data(), loss_fn=LOSS,
               optimizer=lambda p: torch.optim.Adam(other.parameters()))
    assert r.status == "fail"
    assert any("not parameters of this model" in f.message for f in r.findings)


# ---- (4) the user's model is left bit-for-bit unchanged -------------------------------------------
def test_user_model_untouched():
    net = tiny()
    net.eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    for kw in ({"loss_fn": LOSS}, {"train_step": step_without_zero_grad}):
        result(model=net, batch=data(), **kw)
    assert not net.training
    assert all(torch.equal(state[k], v) for k, v in net.state_dict().items())
    assert all(p.grad is None for p in net.parameters())


# ---- (5) issue 9: facts that are not problems, and the misses ---------------------------------------
def _sine():
    x = torch.linspace(-3, 3, 32).unsqueeze(1)
    return x, torch.sin(x)


def test_lbfgs_closure_is_not_a_warning():
    # LBFGS evaluates its closure several times per step: the cleared-gradient check cannot decide,
    # which is a recorded fact, not a warning
    def train_step(model, optimizer, batch):
        x, y = batch

        def closure():
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss
        return optimizer.step(closure)

    r = result(model=lambda: nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, 1)), batch=_sine(),
               train_step=train_step, optimizer=lambda p: torch.optim.LBFGS(p, lr=0.8))
    assert r.status == "pass", [f.message for f in r.findings]
    notes = [f for f in r.findings if f.metric == "zero_grad_residual"]
    assert notes and notes[0].severity == "pass" and "LBFGS" in notes[0].message
    assert "could not tell" in r.summary


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_bias_before_batchnorm_that_rounds_to_zero_is_a_fact(seed):
    def net():
        return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    r = result(model=net, batch=data(seed), loss_fn=LOSS, seed=seed,
               optimizer=lambda p: torch.optim.SGD(p, lr=1e-3))
    assert r.status == "pass", [f.message for f in r.findings]
    assert all(f.severity == "pass" for f in r.findings)


def test_gan_step_that_clears_gradients_is_trained_not_flagged():
    class Gan(nn.Module):
        def __init__(self):
            super().__init__()
            self.G, self.D = nn.Linear(4, 2), nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))

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
            p.grad.zero_()  # kept as zero tensors, not None: "changed with a zero gradient"
        opt.step()
        return d.item()

    real = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    r = result(model=Gan, batch=(real, torch.zeros(32)), train_step=train_step)
    assert r.status == "pass", [f.message for f in r.findings]
    assert r.metrics["changed"] == 6


def test_zero_initialised_head_is_a_fact_not_never_changing():
    # torchvision's ViT zero-initialises its head: at step 0 everything before it gets an exactly
    # zero gradient; from step 2 it trains
    def net():
        m = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
        nn.init.zeros_(m[2].weight)
        return m

    r = result(model=net, batch=data(), loss_fn=LOSS, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    assert r.status == "pass", [f.message for f in r.findings]
    (fact,) = [f for f in r.findings if f.metric == "zero_at_init_only"]
    assert fact.severity == "pass" and "0.weight" in fact.message


def test_steps_too_small_to_train_fail():
    # zoo digits_mlp_clip: clip_grad_norm_(max_norm=1e-6), meant 1.0: every weight moves by ~1e-8
    def train_step(model, opt, batch):
        opt.zero_grad()
        loss = LOSS(model(batch[0]), batch[1])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1e-6)
        opt.step()
        return loss.item()

    r = result(model=tiny(), batch=data(), train_step=train_step, optimizer=lambda p: torch.optim.SGD(p, lr=0.1))
    assert r.status == "fail"
    (f,) = [f for f in r.findings if f.metric == "median_relative_change"]
    # naive: the median over the two weight matrices of |dw| / |w| after one such step
    m = tiny()
    before = [m[0].weight.detach().clone(), m[2].weight.detach().clone()]
    train_step(m, torch.optim.SGD(m.parameters(), lr=0.1), data())
    rel = sorted(float((w.detach() - b).norm() / b.norm()) for w, b in zip((m[0].weight, m[2].weight), before))
    assert f.value == pytest.approx(rel[1], rel=1e-3) and f.value < 1e-6


def test_float16_weights_whose_updates_round_away_fail():
    r = result(model=lambda: tiny().half(), batch=(data()[0].half(), data()[1]), loss_fn=LOSS,
               optimizer=lambda p: torch.optim.SGD(p, lr=1e-3))
    assert r.status == "fail"
    assert any(f.metric == "half_rounded" for f in r.findings)


def test_zero_grad_between_backward_and_step_fails_without_crashing():
    def train_step(model, opt, batch):
        loss = LOSS(model(batch[0]), batch[1])
        loss.backward()
        opt.zero_grad()  # clears the gradient before the step uses it
        opt.step()
        return loss.item()

    r = result(model=tiny(), batch=data(), train_step=train_step)
    assert r.status == "fail", r.summary
    assert any("does not update the model" in f.message for f in r.findings)


def _bn_net():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))


def test_train_step_that_leaves_eval_mode_fails():
    # zoo digits_bn_mlp_accuracy: the step measures accuracy in eval mode and never switches back
    def train_step(model, opt, batch):
        opt.zero_grad()
        loss = LOSS(model(batch[0]), batch[1])
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            (model(batch[0]).argmax(1) == batch[1]).float().mean()
        return loss.item()

    r = result(model=_bn_net, batch=data(), train_step=train_step)
    assert r.status == "fail"
    (f,) = [f for f in r.findings if f.metric == "left_in_eval_mode"]
    assert f.value == 2  # the BatchNorm and the Dropout

    def polite(model, opt, batch):  # the same, switching back: healthy
        loss = train_step(model, opt, batch)
        model.train()
        return loss

    r = result(model=_bn_net, batch=data(), train_step=polite)
    assert not [f for f in r.findings if f.metric == "left_in_eval_mode"], r.findings


def test_batchnorm_frozen_from_scratch_fails_but_frozen_pretrained_is_a_fact():
    class FrozenBN(nn.Sequential):
        def train(self, mode=True):  # the detection-code idiom: BatchNorm stays in eval mode
            super().train(mode)
            for m in self.modules():
                if isinstance(m, nn.BatchNorm1d):
                    m.eval()
            return self

    def scratch():
        return FrozenBN(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    r = result(model=scratch, batch=data(), loss_fn=LOSS)
    assert r.status == "fail" and any(f.metric == "frozen_batchnorm" for f in r.findings)

    def pretrained():
        m = scratch()
        m[1].running_mean.fill_(0.3)
        m[1].running_var.fill_(2.0)
        return m

    r = result(model=pretrained, batch=data(), loss_fn=LOSS)
    assert r.status == "pass", [f.message for f in r.findings]
    assert any(f.metric == "frozen_batchnorm" and f.severity == "pass" for f in r.findings)
