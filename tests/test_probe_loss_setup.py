"""loss-setup: last op vs loss for module losses, loss functions and training_step; the initial
loss against a naive re-computation of ln C; healthy models pass and broken ones fail on seeds 0-2;
the user's model untouched."""

from __future__ import annotations

import math
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
    return nndiag.check_probe("loss-setup", seed=seed, **kw)


def data(n=128, d=8, c=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randint(0, c, (n,), generator=g)


class Head(nn.Module):
    """Linear classifier with an optional last op, as a function call or a module."""

    def __init__(self, last=None, c=4, module=False):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(8, 16), nn.Linear(16, c)
        self.last = last
        self.act = {"softmax": nn.Softmax(dim=1), "sigmoid": nn.Sigmoid(),
                    "log_softmax": nn.LogSoftmax(dim=1)}.get(last) if module else None

    def forward(self, x):
        x = self.fc2(torch.relu(self.fc1(x)))
        if self.act is not None:
            return self.act(x)
        if self.last == "softmax":
            return F.softmax(x, dim=1)
        if self.last == "sigmoid":
            return torch.sigmoid(x)
        if self.last == "log_softmax":
            return x.log_softmax(dim=1)
        if self.last == "relu":
            return torch.relu(x)
        return x


def test_initial_loss_matches_naive_and_ln_c():
    x, y = data()
    model = Head()
    res = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    model.eval()
    with torch.no_grad():
        naive = F.cross_entropy(model(x), y).item()
    assert res.status == Status.PASS, res.findings
    assert res.metrics["initial_loss"] == pytest.approx(naive, rel=1e-5)
    assert res.metrics["expected_initial_loss"] == pytest.approx(math.log(4))
    assert res.data["losses"][0]["input_op"] == "torch.linear"


@pytest.mark.parametrize("module", [False, True])
@pytest.mark.parametrize("loss", ["module", "function", "training_step"])
def test_softmax_before_cross_entropy_fails_in_every_form(module, loss):
    x, y = data()
    kw = {"loss_fn": nn.CrossEntropyLoss()} if loss == "module" else (
        {"loss_fn": lambda out, t: F.cross_entropy(out, t)} if loss == "function" else
        {"training_step": lambda m, b: F.cross_entropy(m(b[0]), b[1])})
    res = run(model=Head("softmax", module=module), batch=(x, y), **kw)
    assert res.status == Status.FAIL
    assert "expects raw logits" in res.findings[0].message


def test_pairings():
    x, y = data()
    yb = (y % 2).float().unsqueeze(1)
    ce = nn.CrossEntropyLoss()
    cases = [
        (Head("sigmoid", c=1), yb, nn.BCEWithLogitsLoss(), Status.FAIL),
        (Head(c=1), yb, nn.BCEWithLogitsLoss(), Status.PASS),
        (Head("sigmoid", c=1), yb, nn.BCELoss(), Status.PASS),
        (Head(), y, nn.NLLLoss(), Status.FAIL),
        (Head("softmax"), y, nn.NLLLoss(), Status.FAIL),
        (Head("log_softmax", module=True), y, nn.NLLLoss(), Status.PASS),
        (Head("relu"), y, ce, Status.FAIL),
        (Head(c=1), y * 0, ce, Status.FAIL),  # cross-entropy over one class
    ]
    for model, targets, loss, want in cases:
        res = run(model=model, batch=(x, targets), loss_fn=loss)
        assert res.status == want, (type(loss).__name__, model.last, res.findings)


def test_bounded_output_regression_targets():
    x, _ = data()
    g = torch.Generator().manual_seed(1)
    inside = torch.rand(128, 1, generator=g)
    res = run(model=Head("sigmoid", c=1), batch=(x, inside), loss_fn=nn.MSELoss())
    assert res.status == Status.PASS and res.metrics["targets_out_of_range"] == 0
    outside = inside * 4  # about 3/4 of them above 1
    res = run(model=Head("sigmoid", c=1), batch=(x, outside), loss_fn=nn.MSELoss())
    assert res.status == Status.FAIL
    assert res.metrics["targets_out_of_range"] == pytest.approx(float((outside > 1).float().mean()))


def test_multi_hot_targets_with_softmax():
    x, _ = data()
    g = torch.Generator().manual_seed(2)
    multi = (torch.rand(128, 4, generator=g) < 0.5).float()
    res = run(model=Head("softmax", module=True), batch=(x, multi), loss_fn=nn.MSELoss())
    assert res.status == Status.FAIL and "multi-label" in res.findings[0].message
    ok = run(model=Head(), batch=(x, multi), loss_fn=nn.BCEWithLogitsLoss())
    assert ok.status == Status.PASS, ok.findings


def test_initial_loss_far_above_ln_c_is_a_recorded_fact():
    """Issue 9: a 3-class classifier starting at 4.5x ln 3 (unscaled inputs) trains; the zoo's
    healthy files reach 1.67x and a bug 4.8x, so the ratio alone cannot fail."""
    x, y = data()
    model = Head()
    with torch.no_grad():
        model.fc2.weight.mul_(30.0)
    res = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.PASS
    assert res.metrics["initial_loss"] > 1.75 * math.log(4)
    (f,) = [f for f in res.findings if f.metric == "initial_loss"]
    assert f.severity == Status.PASS and "confident" in f.message


def test_unknown_loss_skips():
    x, y = data()
    res = run(model=Head(), batch=(x, y.float()), loss_fn=lambda out, t: ((out.sum(1) - t) ** 4).mean())
    assert res.status == Status.SKIP and "not recognised" in res.summary


@pytest.mark.parametrize("seed", SEEDS)
def test_reference_models_pass(seed, mnist_available):
    for name in ("mlp", "xor", "lstm"):
        res = nndiag.check(REF / f"{name}.py", probes=["loss-setup"], seed=seed).subjects[0].result("loss-setup")
        assert res.status == Status.PASS, (name, res.findings)


BROKEN_NAMES = ["softmax_before_cross_entropy", "sigmoid_before_bce_with_logits", "softmax_single_unit",
                "sigmoid_output_regression", "softmax_multilabel", "nll_without_log_softmax",
                "relu_output_layer", "tanh_unscaled_inputs", "sigmoid_unscaled_pixels"]


@pytest.mark.parametrize("name", BROKEN_NAMES)
def test_broken_models_fail(name):
    for seed in SEEDS:
        # the bugs are structural: 64 samples show them (default 256) and keep the test fast
        res = nndiag.check(BROKEN / f"{name}.py", probes=["loss-setup"], seed=seed,
                           loss_setup={"samples": 64}).subjects[0].result("loss-setup")
        assert res.status == Status.FAIL, (seed, res.summary)


def test_user_model_unchanged():
    x, y = data()
    model = Head("softmax")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_log_softmax_over_the_batch_dimension_fails():
    class Wrong(Head):
        def forward(self, x):
            return F.log_softmax(self.fc2(torch.relu(self.fc1(x))), dim=0)

    x, y = data()
    res = run(model=Wrong(), batch=(x, y), loss_fn=nn.NLLLoss())
    assert res.status == Status.FAIL and res.findings[0].metric == "softmax_dim"
    assert len(res.findings) == 1  # the initial-loss finding is not repeated on top


# ---- issue 9 ---------------------------------------------------------------------------------
class BNNet(nn.Module):
    """Unscaled inputs into a fresh BatchNorm: it normalises them in train mode only."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


@pytest.mark.parametrize("seed", SEEDS)
def test_initial_loss_is_measured_in_train_mode(seed):
    g = torch.Generator().manual_seed(seed)
    x, y = torch.rand(64, 1, 8, 8, generator=g) * 255, torch.randint(0, 10, (64,), generator=g)
    torch.manual_seed(seed)
    model = BNNet()
    res = run(seed, model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    import copy

    with torch.no_grad():  # eval first: a train-mode forward moves the running statistics
        eval_loss = float(F.cross_entropy(copy.deepcopy(model).eval()(x), y))
        train_loss = float(F.cross_entropy(copy.deepcopy(model).train()(x), y))
    assert eval_loss > 1.75 * math.log(10)  # what the eval-mode measurement used to fail on
    assert res.metrics["initial_loss"] == pytest.approx(train_loss, rel=1e-4)
    assert res.status == Status.PASS, res.findings


class ReluGap(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 8, 3, padding=1)
        self.cls = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        return nn.functional.adaptive_avg_pool2d(torch.relu(self.cls(x)), 1).flatten(1)


def test_relu_behind_a_global_average_pool_is_seen():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 1, 6, 6, generator=g), torch.randint(0, 4, (64,), generator=g)
    res = run(model=ReluGap(), batch=(x, y), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.WARN
    (f,) = [f for f in res.findings if f.metric == "input_op"]
    assert "average of ReLU outputs" in f.message and f.where == "cls"
    assert res.data["losses"][0]["input_op_through_pooling"] == "torch.relu"
    # a ReLU straight on the logits is still a failure
    res = run(model=Head("relu"), batch=data(), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.FAIL


@pytest.mark.parametrize("opt,lr,status", [(torch.optim.SGD, 1e-3, Status.WARN),
                                           (torch.optim.SGD, 0.1, Status.FAIL),
                                           (torch.optim.Adam, 1e-3, Status.PASS)])
@pytest.mark.parametrize("how", ["reduction", "hand"])
def test_loss_summed_over_the_batch(opt, lr, status, how):
    x, y = data(n=64)
    if how == "reduction":
        loss_fn = nn.CrossEntropyLoss(reduction="sum")
    else:
        def loss_fn(out, t):
            return F.cross_entropy(out, t, reduction="none").sum()
    res = run(model=Head(), batch=(x, y), loss_fn=loss_fn, optimizer=lambda p: opt(p, lr=lr))
    assert res.status == status, res.findings
    (f,) = [f for f in res.findings if f.metric in ("loss_scale", "effective_step_size")]
    assert res.metrics["loss_scale"] == pytest.approx(64, rel=1e-3)
    assert "summed over the batch" in f.message
    if status == Status.FAIL:  # lr 0.1 acts as 6.4 on the per-sample scale
        assert f.value == pytest.approx(0.1 * 64, rel=1e-3)
    # the initial loss is judged per sample: about ln 4, not 64 ln 4
    torch.manual_seed(0)
    assert res.metrics["initial_loss_ratio"] < 1.75


def test_mean_loss_is_not_called_summed():
    res = run(model=Head(), batch=data(), loss_fn=nn.CrossEntropyLoss())
    assert res.metrics["loss_scale"] == pytest.approx(1.0)
    assert "summed_over_batch" not in res.metrics


class Gen(nn.Module):
    def __init__(self):
        super().__init__()
        self.g = nn.Linear(4, 8)
        self.d = nn.Linear(8, 1)

    def forward(self, x):  # the discriminator's score
        return torch.sigmoid(self.d(x))


def gan_step(model, optimizer, batch):
    """A GAN step: its own real/fake labels, never the batch's class labels."""
    real, _ = batch
    bce = nn.BCELoss()
    fake = model.g(torch.randn(real.shape[0], 4))
    d_real, d_fake = torch.sigmoid(model.d(real)), torch.sigmoid(model.d(fake.detach()))
    loss = bce(d_real, torch.ones_like(d_real)) + bce(d_fake, torch.zeros_like(d_fake))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def test_own_train_step_decides_what_the_loss_sees():
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(32, 8, generator=g), torch.randint(0, 10, (32,), generator=g))
    # loss_fn(output, batch labels) would raise: BCELoss on class ids of another shape
    res = run(model=Gen(), batch=batch, loss_fn=nn.BCELoss(), train_step=gan_step)
    assert res.status in (Status.PASS, Status.SKIP), res.findings
    assert [c["loss"] for c in res.data["losses"]] == ["binary_cross_entropy"] * 2


class Tagger(nn.Module):
    def __init__(self, permute):
        super().__init__()
        self.emb, self.out, self.permute = nn.Embedding(20, 8), nn.Linear(8, 6), permute

    def forward(self, tokens):
        y = self.out(self.emb(tokens))
        return y.permute(0, 2, 1) if self.permute else y


def test_sequence_logits_with_classes_last_fail():
    g = torch.Generator().manual_seed(0)
    tokens, tags = torch.randint(0, 20, (32, 6), generator=g), torch.randint(0, 6, (32, 6), generator=g)
    res = run(model=Tagger(permute=False), batch=(tokens, tags), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.FAIL and res.findings[0].metric == "class_dim"
    res = run(model=Tagger(permute=True), batch=(tokens, tags), loss_fn=nn.CrossEntropyLoss())
    assert res.status == Status.PASS, res.findings


def test_regression_shapes_that_broadcast_fail():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 4, generator=g), torch.randn(32, generator=g)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    res = run(model=model, batch=(x, y), loss_fn=nn.MSELoss())
    assert res.status == Status.FAIL
    (f,) = res.findings
    assert f.metric == "broadcast_elements" and f.value == 32 * 32
    res = run(model=model, batch=(x, y[:, None]), loss_fn=nn.MSELoss())
    assert res.status == Status.PASS, res.findings


# ---- targets that reach the loss: ids cut from their samples, class ids used as numbers ------

def digits_subset(seed, n=260):
    """A seeded random subset of sklearn's bundled 8x8 digits (real, structured inputs)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = torch.randperm(len(d.target), generator=torch.Generator().manual_seed(seed))[:n]
    return (torch.tensor(d.data, dtype=torch.float32)[idx] / 16.0,
            torch.tensor(d.target)[idx])


def naive_nn_z(x, y):
    """Leave-one-out 1-NN accuracy of y on per-feature standardised x, as a z-score vs chance."""
    x = x.double()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)
    n = len(y)
    best = []
    for i in range(n):
        d = ((x - x[i]) ** 2).sum(1)
        d[i] = float("inf")
        best.append(int(d.argmin()))
    acc = sum(int(y[j] == y[i]) for i, j in enumerate(best)) / n
    freq = torch.bincount(y - y.min()).double() / n
    chance = float((freq ** 2).sum())
    return (acc - chance) / math.sqrt(chance * (1 - chance) / n)


def onehot_batches(seed, size=10):
    x, y = digits_subset(seed)
    onehot = F.one_hot(y, 10).float()
    return [(x[i:i + size], onehot[i:i + size]) for i in range(0, len(y), size)], x, y


def mlp(out=10):
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, out))


@pytest.mark.parametrize("seed", SEEDS)
def test_ids_decoded_over_the_batch_fail_and_own_rows_pass(seed):
    batches, x, y = onehot_batches(seed)
    crit = nn.CrossEntropyLoss()
    perm = torch.randperm(10, generator=torch.Generator().manual_seed(seed + 1))

    def over_batch(model, batch):
        inputs, onehot = batch
        return crit(model(inputs), onehot.argmax(dim=0))  # 10 samples, 10 classes: shapes fit

    def own_rows(model, batch):
        inputs, onehot = batch
        return crit(model(inputs), onehot.argmax(dim=1))

    def relabelled(model, batch):  # a lookup table keeps each sample's class: not a bug
        inputs, onehot = batch
        return crit(model(inputs), perm[onehot.argmax(dim=1)])

    bad = run(seed, model=mlp(), batches=batches, training_step=over_batch)
    assert bad.status == Status.FAIL, bad.findings
    (f,) = [f for f in bad.findings if f.metric == "loss_target_signal_z"]
    assert "argmax(dim=0)" in f.message
    n = len(y)
    ids = torch.cat([oh.argmax(dim=0) for _, oh in batches])
    assert bad.metrics["batch_label_signal_z"] == pytest.approx(naive_nn_z(x[:n], y), rel=1e-6)
    assert bad.metrics["loss_target_signal_z"] == pytest.approx(naive_nn_z(x[:n], ids), rel=1e-6)
    assert bad.metrics["loss_target_signal_z"] < 3 < 10 < bad.metrics["batch_label_signal_z"]
    for step in (own_rows, relabelled):
        good = run(seed, model=mlp(), batches=batches, training_step=step)
        assert good.status == Status.PASS, (step.__name__, good.findings)
        assert good.metrics["loss_target_signal_z"] > 10


def naive_value_order(x, y, k=5):
    """(same share, order) of y among each sample's k nearest inputs, written out with loops."""
    x = x.double()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)
    y = [float(v) for v in y]
    n, same, diffs = len(y), 0, []
    for i in range(n):
        d = ((x - x[i]) ** 2).sum(1)
        d[i] = float("inf")
        for j in d.argsort()[:k].tolist():
            if y[j] == y[i]:
                same += 1
            else:
                diffs.append(abs(y[j] - y[i]))
    every = [abs(a - b) for a in y for b in y if a != b]
    return same / (n * k), (sum(diffs) / len(diffs)) / (sum(every) / len(every))


@pytest.mark.parametrize("seed", SEEDS)
def test_class_ids_as_regression_targets_fail(seed):
    x, y = digits_subset(seed, n=256)
    t = y.float().unsqueeze(1)
    batches = [(x[i:i + 32], t[i:i + 32]) for i in range(0, 256, 32)]
    res = run(seed, model=mlp(1), batches=batches, loss_fn=nn.MSELoss())
    assert res.status == Status.FAIL, res.findings
    same, order = naive_value_order(x, y)
    assert res.metrics["target_values_same_share"] == pytest.approx(same, rel=1e-9)
    assert res.metrics["target_values_order"] == pytest.approx(order, rel=1e-9)
    assert order >= 1.0 and same >= 0.5
    (f,) = [f for f in res.findings if f.metric == "target_values_order"]
    assert "CrossEntropyLoss" in f.message


@pytest.mark.parametrize("seed", SEEDS)
def test_ordered_integer_and_continuous_regression_targets_pass(seed):
    from sklearn.datasets import load_diabetes

    d = load_diabetes()
    idx = torch.randperm(len(d.target), generator=torch.Generator().manual_seed(seed))[:256]
    x = torch.tensor(d.data, dtype=torch.float32)[idx]
    raw = torch.tensor(d.target, dtype=torch.float32)[idx]
    deciles = torch.bucketize(raw, torch.quantile(raw, torch.linspace(0.1, 0.9, 9))).float()
    for t in (deciles, raw / 100):  # a score in 10 ordered steps; the quantity itself
        batches = [(x[i:i + 32], t[i:i + 32, None]) for i in range(0, 256, 32)]
        res = run(seed, model=nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 1)),
                  batches=batches, loss_fn=nn.MSELoss())
        assert res.status == Status.PASS, res.findings
        assert res.metrics["target_values_order"] < 1.0
