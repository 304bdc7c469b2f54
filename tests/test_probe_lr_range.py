"""The lr-range probe (nndiag/probes/lr_range.py) and its arithmetic (nndiag/lr_sweep.py)."""

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag import lr_sweep

REPO = Path(__file__).resolve().parents[1]
BROKEN = REPO / "reference_models" / "broken"
SHARED_DATA = REPO / "reference_models"  # its mnist/ folder is the shipped MNIST test set
needs_mnist = pytest.mark.skipif(not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="offline MNIST not found")


def run(path_or_none=None, seed=0, **kw):
    return nndiag.check_probe("lr-range", path_or_none, seed=seed, **kw)


# ---- the arithmetic against naive re-computations --------------------------------------------

def test_exp_lrs_is_geometric_from_start_to_end():
    lrs = lr_sweep.exp_lrs(1e-7, 10.0, 100)
    assert len(lrs) == 100
    assert lrs[0] == pytest.approx(1e-7) and lrs[-1] == pytest.approx(10.0)
    ratios = np.array(lrs[1:]) / np.array(lrs[:-1])
    assert np.allclose(ratios, (10.0 / 1e-7) ** (1 / 99))


def test_ema_matches_the_bias_corrected_formula():
    values = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0]
    beta = 0.9
    got = lr_sweep.ema_smooth(values, beta)
    for i in range(len(values)):
        # closed form: sum_j (1-beta) beta^(i-j) v_j / (1 - beta^(i+1))
        num = sum((1 - beta) * beta ** (i - j) * values[j] for j in range(i + 1))
        assert got[i] == pytest.approx(num / (1 - beta ** (i + 1)))
    assert got[0] == values[0]  # bias correction: the first smoothed value is the first value


def test_steepest_is_measured_against_log_lr():
    lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 2.0]
    losses = [2.0, 1.9, 1.7, 0.5, 0.45, 0.4]
    # against log lr the fall around 1e-2 is steepest; against linear lr the tiny spacing at the
    # low end makes an earlier, smaller fall look steeper (Lightning #14248)
    assert lr_sweep.steepest_index(lrs, losses) == 2
    naive = np.gradient(np.array(losses), np.log(np.array(lrs)))
    assert lr_sweep.steepest_index(lrs, losses) == int(np.argmin(naive))
    assert int(np.argmin(np.gradient(np.array(losses), np.array(lrs)))) != 2


def test_valley_follows_fastai():
    losses = [5, 5, 4, 3, 2.5, 2, 1.5, 1, 3, 0.5, 6]
    # longest decreasing run: 5,4,3,2.5,2,1.5,1,0.5 ends at index 9, length 8 -> start 1;
    # sections = 8/3 -> idx = 1 + 2 + 1 = 4
    assert lr_sweep.valley_index(losses) == 4


def test_divergence_rule():
    assert lr_sweep.has_diverged(4.1, 1.0, 4.0)
    assert not lr_sweep.has_diverged(3.9, 1.0, 4.0)
    assert lr_sweep.has_diverged(float("nan"), 1.0, 4.0)
    # negative best losses: the same rise, measured as a difference
    assert lr_sweep.has_diverged(4.1, -1.0, 4.0) and not lr_sweep.has_diverged(1.9, -1.0, 4.0)


def test_suggest_on_a_synthetic_curve():
    lrs = lr_sweep.exp_lrs(1e-7, 10, 100)
    x = np.log10(lrs)
    raw = list(2.0 - 1.5 / (1 + np.exp(-(x + 3) * 2)) + np.where(x > -1, (x + 1) * 3, 0))
    curve = lr_sweep.SweepCurve(num_it=100)
    sm_, best = lr_sweep.EmaSmoother(0.98), [math.inf]
    for lr, loss in zip(lrs, raw):
        if lr_sweep.record_step(curve, sm_, best, lr, loss, 4.0):
            break
    sug = lr_sweep.suggest(curve)
    assert sug.descent == pytest.approx((np.median(raw[:10]) - min(lr_sweep.running_median(raw))) / np.median(raw[:10]))
    assert 1e-5 < sug.steepest < 1e-1
    assert sug.lr_blowup is not None and sug.lr_blowup > 1e-1
    assert sug.minimum_div10 == pytest.approx(curve.lrs[int(np.argmin(curve.smoothed[10:-5])) + 10] / 10)
    # the landmarks of the verdict, recomputed naively from the raw losses' running median
    med = lr_sweep.running_median(curve.losses)
    level, low = np.median(curve.losses[:10]), int(np.argmin(med))
    first = next(i for i in range(len(med)) if level - med[i] >= 0.1 * (level - med[low]))
    assert sug.lr_descent_start == curve.lrs[first] and sug.lr_at_median_min == curve.lrs[low]
    assert sug.lr_descent_start < sug.steepest < sug.lr_at_median_min  # one curve, one story


# ---- the probe's numbers against a hand-run sweep ----------------------------------------------

def _tiny_regression():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 3, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5]]) + 0.1
    return x, y


def test_probe_curve_equals_a_naive_sweep():
    x, y = _tiny_regression()
    torch.manual_seed(123)
    model = nn.Linear(3, 1)
    opt_factory = lambda p: torch.optim.SGD(p, lr=0.01)  # noqa: E731
    res = run(model=model, batch=(x, y), loss_fn=nn.MSELoss(), optimizer=opt_factory,
              lr_range={"num_it": 40, "start_lr": 1e-4, "end_lr": 1.0})
    # naive: same copy, same schedule, one SGD step per LR
    m = copy.deepcopy(model)
    opt = opt_factory(m.parameters())
    losses = []
    for lr in [1e-4 * (1.0 / 1e-4) ** (i / 39) for i in range(40)]:
        opt.param_groups[0]["lr"] = lr
        opt.zero_grad()
        loss = nn.functional.mse_loss(m(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    n = len(res.data["losses"])
    assert n >= 10
    assert np.allclose(res.data["losses"], losses[:n], rtol=1e-5)
    assert np.allclose(res.data["smoothed"], lr_sweep.ema_smooth(losses[:n], 0.98), rtol=1e-5)
    assert res.metrics["configured_lr"] == 0.01


def test_parameter_groups_keep_their_ratio():
    x, y = _tiny_regression()
    seen = []

    def build_opt(params):
        params = list(params)
        return torch.optim.SGD([{"params": params[:1], "lr": 0.01}, {"params": params[1:], "lr": 0.001}])

    def train_step(model, opt, batch):
        seen.append([g["lr"] for g in opt.param_groups])
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(batch[0]), batch[1])
        loss.backward()
        opt.step()
        return loss.item()

    res = run(model=nn.Linear(3, 1), batch=(x, y), optimizer=build_opt, train_step=train_step,
              lr_range={"num_it": 20})
    assert res.status.value in ("pass", "warn", "skip")
    assert res.metrics["param_groups"] == 2 and res.metrics["configured_lr"] == 0.01
    # the sweep's steps come first; the held-LR run (shared with overfit) may follow, at 0.01/0.001
    assert len(seen) >= len(res.data["lrs"])
    assert all(s == [0.01, 0.001] for s in seen[len(res.data["lrs"]):])
    for (a, b), lr in zip(seen, res.data["lrs"]):
        assert a == pytest.approx(lr) and b == pytest.approx(lr / 10)


def test_dict_batches_and_training_step():
    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(2, 4), nn.Linear(4, 2)

        def forward(self, x, extra):
            return self.b(torch.relu(self.a(x))) + extra

    g = torch.Generator().manual_seed(1)
    batch = ({"x": torch.randn(32, 2, generator=g), "extra": torch.zeros(32, 2)},
             torch.randint(0, 2, (32,), generator=g))

    def training_step(model, b):
        return nn.functional.cross_entropy(model(**b[0]), b[1])

    res = run(model=DictNet, batch=batch, training_step=training_step)
    assert res.status.value != "error", res.summary
    assert len(res.data["lrs"]) == len(res.data["losses"]) == len(res.data["smoothed"]) > 10


# ---- healthy and broken models -----------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_xor_passes(seed):
    res = run(REPO / "reference_models" / "xor.py", seed=seed)
    assert res.status.value == "pass", res.summary


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_lstm_passes(seed):
    res = run(REPO / "reference_models" / "lstm.py", seed=seed)
    assert res.status.value == "pass", res.summary


@needs_mnist
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_mlp_passes(seed, monkeypatch):
    monkeypatch.setenv("NNDIAG_DATA_DIR", str(SHARED_DATA))
    res = run(REPO / "reference_models" / "mlp.py", seed=seed)
    assert res.status.value == "pass", res.summary
    s = res.metrics
    assert s["good_range_low"] < s["configured_lr"] < s["good_range_high"] < s["lr_diverged"]


@pytest.mark.parametrize("name", ["sgd_lr_too_high_quadratic", "digits_linear_mse_huge_lr"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lr_too_high_fails(name, seed):
    res = run(BROKEN / f"{name}.py", seed=seed)
    assert res.status.value == "fail", res.summary
    assert res.metrics["configured_lr"] >= res.metrics["lr_diverged"]
    assert res.findings[0].where == "build_optimizer"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_lr_too_low_fails(seed):
    # SO 50306988: Adam 1e-3 on a 2-2-2 sigmoid net; the sweep's loss starts falling near 0.2
    res = run(BROKEN / "lr_too_low_two_blobs.py", seed=seed)
    assert res.status.value == "fail", res.summary
    m = res.metrics
    assert m["configured_lr"] < m["good_range_low"]
    assert m["lr_over_descent_start"] == pytest.approx(m["configured_lr"] / m["lr_descent_start"])
    assert m["lr_over_descent_start"] < 0.01
    assert res.findings[0].metric == "lr_over_descent_start"


def test_flat_curve_cannot_decide():
    # no descent anywhere in the sweep: not decided (skip), never a warning
    res = run(BROKEN / "xor_mae_sigmoid_low_lr.py")
    assert res.status.value == "skip"
    assert res.metrics["descent"] < 0.1
    assert "cannot judge" in res.summary


def _blob_classifier(lr, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(64) % 3
    x = torch.randn(64, 6, generator=g) + 2.0 * nn.functional.one_hot(y, 6).float()
    return run(model=lambda: nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 3)), batch=(x, y),
               loss_fn=nn.CrossEntropyLoss(), optimizer=lambda p: torch.optim.SGD(p, lr=lr), seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_configured_lr_bands_follow_the_sweep(seed):
    # The sweep sets every LR itself, so its curve does not depend on the configured LR: one sweep
    # gives the landmarks, and LRs placed against them get the documented verdicts.
    ref = _blob_classifier(0.1, seed)
    assert ref.status.value == "pass", ref.summary
    start, div = ref.metrics["lr_descent_start"], ref.metrics["lr_diverged"]
    assert start is not None and div is not None and start < div
    near = _blob_classifier(0.7 * div, seed)  # diverges after tens of steps at a fixed LR: warn
    assert near.metrics["lr_over_divergence"] == pytest.approx(0.7, rel=1e-6)
    # ... and when the held-LR run (300 steps at it) shows that happening, a fail
    if near.metrics["held_relapse"] >= 2.0:
        assert near.status.value == "fail" and near.findings[0].metric == "held_relapse", near.summary
    else:
        assert near.status.value == "warn", near.summary
        assert near.findings[0].metric == "lr_over_divergence"
    past = _blob_classifier(1.5 * div, seed)
    assert past.status.value == "fail"
    assert past.findings[0].metric in ("lr_over_divergence", "held_relapse")
    slow = _blob_classifier(0.02 * start, seed)  # 50x below where the loss starts to fall: warn
    assert slow.status.value == "warn" and slow.findings[0].metric == "lr_over_descent_start"
    stuck = _blob_classifier(0.002 * start, seed)  # 500x below: fail
    assert stuck.status.value == "fail" and stuck.findings[0].metric == "lr_over_descent_start"


def test_skip_reason():
    res = run(REPO / "reference_models" / "xor.py", lr_range={"skip_reason": "LR set by a scheduler"})
    assert res.status.value == "skip" and "scheduler" in res.summary


# ---- the user's objects are left alone ----------------------------------------------------------

def test_user_model_is_bit_for_bit_unchanged():
    x, y = _tiny_regression()
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    res = run(model=model, batch=(x, y), loss_fn=nn.MSELoss(),
              optimizer=lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9))
    assert res.status.value != "error", res.summary
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert not model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(rng, torch.get_rng_state())


# ---- the held-LR signals (nndiag/probes/lr_held.py) ---------------------------------------------

ZOO_BUGS = REPO / "reference_models" / "zoo" / "bugs"


def test_relapse_and_held_drop_against_naive_recomputations():
    from nndiag.probes.lr_held import held_drop, relapse

    curves = [[2.3, 2.2, 2.0, 0.8, 115.0, 4.0, 2.19], [2.3, 2.25, 2.21], [1.0, 0.5, float("nan"), 3.0],
              [1.0, 0.2, 0.1, 0.05], [-1.0, -2.0]]
    for c in curves:
        fin = [v for v in c if math.isfinite(v)]
        # naive: the first index at or below 0.9 x start, then the largest finite loss from there
        first = next((i for i, v in enumerate(c) if math.isfinite(v) and v <= 0.9 * c[0]), None)
        want = None if c[0] <= 0 or first is None else \
            max(v for v in c[first:] if math.isfinite(v)) / c[0]
        assert relapse(c, 0.1) == (None if want is None else pytest.approx(want))
        assert held_drop(c) == pytest.approx((c[0] - min(fin)) / abs(c[0]))
    assert relapse(curves[0], 0.1) == pytest.approx(115 / 2.3)
    assert relapse(curves[1], 0.1) is None  # never fell 10%: nothing to relapse from


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_held_relapse_reads_the_overfit_run(seed):
    # SGD lr 1.0 with momentum 0.9 on a digits MLP: the loss falls for a few steps, then jumps to
    # 4-50x its start and the ReLUs die. On seed 2 the sweep's divergence point (1.07) lies just
    # above 1.0, so the sweep alone only warned; the held run decides on every seed.
    r = nndiag.check(ZOO_BUGS / "digits_mlp_sgd_lr.py", probes=["lr-range", "overfit"], seed=seed, threads=1)
    res = {x.probe: x for x in r.subjects[0].results}
    lr, curve = res["lr-range"], res["overfit"].data["loss_curve"]
    assert lr.status.value == "fail", lr.summary
    first = next(i for i, v in enumerate(curve) if v <= 0.9 * curve[0])
    assert lr.metrics["held_relapse"] == pytest.approx(max(curve[first:]) / curve[0])
    assert lr.metrics["held_relapse"] >= 2.0
    assert lr.findings[0].where == "build_optimizer"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flat_sweep_with_an_lr_far_too_low_fails_by_the_rescue_runs(seed):
    # plain SGD at 1e-3 on a small CNN: one step per LR is too few for SGD, so the sweep is flat;
    # held for 300 steps the loss moves < 1%, while 100x the LR halves it (from the same weights,
    # on the same batch)
    res = run(ZOO_BUGS / "digits_cnn_sgd.py", seed=seed)
    assert res.status.value == "fail", res.summary
    assert res.findings[0].metric == "rescue_factor" and res.metrics["rescue_factor"] == 100.0
    assert res.metrics["descent"] < 0.1 and res.metrics["held_drop"] < 0.15
    # naive: the same model and batch in plain PyTorch at 100x the configured LR
    import importlib.util
    spec = importlib.util.spec_from_file_location("cnn_sgd", ZOO_BUGS / "digits_cnn_sgd.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    x, y = next(iter(mod.dataloader()))
    torch.manual_seed(seed)
    model = mod.build_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = mod.loss_fn(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses) <= 0.5 * losses[0]


def test_flat_sweep_that_no_lr_rescues_still_cannot_decide():
    # MAE through sigmoids: the loss is stuck at any LR tried, so the LR is not blamed
    res = run(BROKEN / "xor_mae_sigmoid_low_lr.py")
    assert res.status.value == "skip" and "cannot judge" in res.summary
    assert "rescue_factor" not in res.metrics
