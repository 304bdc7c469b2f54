"""The overfit probe (nndiag/probes/overfit.py)."""

import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.probes.overfit import constant_baseline, detect_classification, detect_floor

REPO = Path(__file__).resolve().parents[1]
BROKEN = REPO / "reference_models" / "broken"
SHARED_DATA = REPO.parent / "shared" / "data"
needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="offline MNIST not found")


def run(path=None, seed=0, **kw):
    return nndiag.check_probe("overfit", path, seed=seed, **kw)


def _blobs(n=32, c=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % c
    x = torch.randn(n, d, generator=g) + 2.0 * nn.functional.one_hot(y, d).float()
    return x, y


# ---- numbers against a naive re-computation ----------------------------------------------------

def test_curve_equals_a_naive_training_loop():
    x, y = _blobs()
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 3))
    factory = lambda p: torch.optim.SGD(p, lr=0.05)  # noqa: E731
    res = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss(), optimizer=factory,
              overfit={"steps": 25})
    m = copy.deepcopy(model)
    opt = factory(m.parameters())
    losses, accs = [], []
    for _ in range(len(res.data["loss_curve"])):
        opt.zero_grad()
        out = m(x)
        loss = nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        accs.append((out.argmax(1) == y).float().mean().item())
    assert res.data["loss_curve"] == pytest.approx(losses, rel=1e-5)
    assert res.data["accuracy_curve"] == pytest.approx(accs)
    assert res.metrics["initial_loss"] == pytest.approx(losses[0], rel=1e-6)
    prior = torch.bincount(y).float() / len(y)
    chance_loss = float(-(prior * prior.log()).sum())  # the loss of predicting the class prior
    assert res.metrics["target"] == pytest.approx(0.02 * max(losses[0], chance_loss), rel=1e-6)
    assert res.metrics["chance_accuracy"] == pytest.approx(11 / 32)  # 32 samples, 3 classes: 11/11/10
    assert res.metrics["steps"] == len(losses) <= 25


def test_classification_detection():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    sc = detect_classification(logits, torch.tensor([0, 1, 1]), nn.CrossEntropyLoss())
    assert sc.kind == "multiclass" and sc.correct(logits).tolist() == [True, True, False]
    assert sc.chance == pytest.approx(2 / 3)
    probs = torch.tensor([[0.9], [0.2], [0.6]])
    sc = detect_classification(probs, torch.tensor([[1.0], [0.0], [0.0]]), nn.BCELoss())
    assert sc.kind == "binary" and sc.correct(probs).tolist() == [True, True, False]
    raw = torch.tensor([1.5, -0.2, 0.3])
    sc = detect_classification(raw, torch.tensor([1.0, 0.0, 0.0]), nn.BCEWithLogitsLoss())
    assert sc.correct(raw).tolist() == [True, True, False]  # cut at 0 for logits
    onehot = torch.eye(3)[[0, 2, 1]]
    out = torch.tensor([[1.0, 0, 0], [0, 0, 1.0], [1.0, 0, 0]])
    sc = detect_classification(out, onehot, nn.MSELoss())
    assert sc.kind == "one-hot" and sc.correct(out).tolist() == [True, True, False]
    seq = torch.randn(2, 4, 7)  # (N, C, L) with (N, L) targets, -100 ignored
    tgt = seq.argmax(1)
    tgt[0, 0] = -100
    sc = detect_classification(seq, tgt, nn.CrossEntropyLoss())
    assert sc.correct(seq).all() and sc.correct(seq).numel() == 13
    # regression targets are not classification
    assert detect_classification(torch.randn(4, 1), torch.randn(4, 1), nn.MSELoss()) is None
    assert detect_classification(torch.randn(4, 3), torch.randint(0, 5, (4,)), None) is None


def test_floors_and_baselines():
    ce = nn.CrossEntropyLoss(label_smoothing=0.1)
    floor, _ = detect_floor(ce, torch.zeros(4, 5), torch.zeros(4, dtype=torch.long))
    q = torch.full((5,), 0.1 / 5)
    q[0] += 0.9
    best = ce(q.log().expand(4, 5), torch.zeros(4, dtype=torch.long))  # logits = log q: the optimum
    assert floor == pytest.approx(best.item(), rel=1e-5)
    t = torch.tensor([[1.0], [2.0], [4.0]])
    assert constant_baseline(nn.MSELoss(), t)[0] == pytest.approx(((t - t.mean()) ** 2).mean().item())
    assert constant_baseline(nn.L1Loss(), t)[0] == pytest.approx((t - 2.0).abs().mean().item())
    assert constant_baseline(nn.CrossEntropyLoss(), t) is None  # float targets: not class ids
    h = constant_baseline(nn.CrossEntropyLoss(), torch.tensor([0, 0, 1, 2]))[0]
    assert h == pytest.approx(-(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25)))
    logits = torch.tensor([0.5, 0.25, 0.25]).log().expand(4, 3)  # predicting the prior reaches it
    assert h == pytest.approx(nn.functional.cross_entropy(logits, torch.tensor([0, 0, 1, 2])).item())


def test_label_smoothing_floor_lets_a_healthy_model_pass():
    x, y = _blobs()
    res = run(model=lambda: nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 3)), batch=(x, y),
              loss_fn=nn.CrossEntropyLoss(label_smoothing=0.1),
              optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    assert res.status.value == "pass", res.summary
    assert res.metrics["loss_floor"] > 0.2


# ---- outcomes ---------------------------------------------------------------------------------

def test_small_budget_warns_with_the_curve():
    res = run(REPO / "reference_models" / "xor.py", overfit={"steps": 15})
    assert res.status.value == "warn", res.summary
    assert len(res.data["loss_curve"]) == 15 and res.metrics["steps"] == 15
    assert "step budget ran out" in res.findings[0].message


def test_train_step_and_training_step_paths():
    x, y = _blobs()
    make = lambda: nn.Sequential(nn.Linear(5, 32), nn.ReLU(), nn.Linear(32, 3))  # noqa: E731

    def train_step(model, opt, batch):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(batch[0]), batch[1])
        loss.backward()
        opt.step()
        return loss.item()

    def training_step(model, batch):
        return nn.functional.cross_entropy(model(batch[0]), batch[1])

    for kw in ({"train_step": train_step}, {"training_step": training_step}):
        res = run(model=make, batch=(x, y), optimizer=lambda p: torch.optim.Adam(p, lr=1e-2), **kw)
        assert res.status.value == "pass", (kw, res.summary)
        assert res.metrics["accuracy"] == 1.0  # scored by an extra forward: classification detected


def test_skip_reason():
    res = run(REPO / "reference_models" / "xor.py", overfit={"skip_reason": "GAN: two optimizers"})
    assert res.status.value == "skip" and "GAN" in res.summary


def test_all_same_class_warns():
    x, _ = _blobs()
    y = torch.zeros(32, dtype=torch.long)  # SO 59325381: labels divided by 255 -> all 0
    res = run(model=lambda: nn.Linear(5, 10), batch=(x, y), loss_fn=nn.CrossEntropyLoss(),
              optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    assert res.status.value == "warn"
    assert any("same class" in f.message for f in res.findings)


# ---- healthy and broken models -----------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", ["xor", "lstm"])
def test_healthy_models_pass(name, seed):
    # max_seconds raised: on a loaded 2-core machine torch's threads can run 30x slower; the time
    # budget is a safety net, the step criterion is what is tested here
    res = run(REPO / "reference_models" / f"{name}.py", seed=seed, overfit={"max_seconds": 120})
    assert res.status.value == "pass", res.summary
    assert res.metrics["final_loss"] < res.metrics["target"]


@needs_mnist
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_mlp_passes(seed, monkeypatch):
    monkeypatch.setenv("NNDIAG_DATA_DIR", str(SHARED_DATA))
    res = run(REPO / "reference_models" / "mlp.py", seed=seed, overfit={"max_seconds": 120})
    assert res.status.value == "pass", res.summary
    assert res.metrics["accuracy"] == 1.0 and res.metrics["steps"] < 100


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name,metric", [
    ("digits_linear_mse_huge_lr", "final_loss"),  # NaN
    ("sgd_lr_too_high_quadratic", "baseline_gain"),  # collapsed to a constant output
    ("lr_too_low_two_blobs", "drop"),  # loss barely moves
    ("xor_mae_sigmoid_low_lr", "drop"),
])
def test_broken_models_fail(name, metric, seed):
    res = run(BROKEN / f"{name}.py", seed=seed)
    assert res.status.value == "fail", res.summary
    assert res.findings[-1].metric == metric
    assert res.data["loss_curve"]


# ---- the user's objects are left alone ----------------------------------------------------------

def test_user_model_is_bit_for_bit_unchanged():
    x, y = _blobs()
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 3))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    res = run(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss(),
              optimizer=lambda p: torch.optim.Adam(p, lr=1e-2))
    assert res.status.value != "error", res.summary
    after = model.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())
    assert math.isfinite(res.metrics["final_loss"])
