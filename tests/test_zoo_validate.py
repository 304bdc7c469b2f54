"""The zoo validator: its TrainTrace matches a naive plain-PyTorch loop, and its rules judge right."""

import json
import textwrap

import pytest
import torch

from nndiag.loading import load_model_file
from reference_models.zoo import validate

CLASSIFIER = """
import torch
import torch.nn as nn

g = torch.Generator().manual_seed(5)
X = torch.randn(24, 4, generator=g)
Y = (X[:, 0] + X[:, 1] > 0).long() + (X[:, 2] > 1).long()
train_loader = [(X[:8], Y[:8]), (X[8:16], Y[8:16]), (X[16:], Y[16:])]

def build_model():
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.2), nn.Linear(8, 3))

loss_fn = nn.CrossEntropyLoss()

def build_optimizer(params):
    return torch.optim.SGD(params, lr={lr}, momentum=0.9)
"""


def _file(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def _naive(path, seed, steps):
    """The same training written out by hand: seed, build, cycle batches, SGD steps."""
    subject = load_model_file(path)
    torch.manual_seed(seed)
    model = subject.model_factory()
    model.train()
    opt = subject.optimizer_factory(list(model.parameters()))
    batches = list(subject.batches())
    losses, accs = [], []
    for i in range(steps):
        x, y = batches[i % len(batches)]
        opt.zero_grad()
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        accs.append((out.argmax(1) == y).float().mean().item())
    return losses, accs


@pytest.mark.parametrize("seed", [0, 3])
def test_trace_matches_naive_loop(tmp_path, seed):
    path = _file(tmp_path, "clf.py", CLASSIFIER.format(lr=0.1))
    trace = validate.train(load_model_file(path), seed, steps=25)
    losses, accs = _naive(path, seed, 25)
    assert trace.losses == pytest.approx(losses, rel=1e-6, abs=1e-7)
    assert trace.accuracies == pytest.approx(accs)
    assert trace.num_classes == 3 and trace.steps == 25 and trace.seed == seed
    assert trace.initial == pytest.approx(sum(losses[:3]) / 3)
    assert trace.final == pytest.approx(sum(losses[-10:]) / 10)
    assert trace.final_accuracy == pytest.approx(sum(accs[-10:]) / 10)
    assert trace.unchanged == []


def test_healthy_file_passes_and_nonlearning_file_is_rejected(tmp_path):
    good = _file(tmp_path, "good.py", CLASSIFIER.format(lr=0.1))
    stuck = _file(tmp_path, "stuck.py", CLASSIFIER.format(lr=0.0))
    ok = validate.validate_file(str(good), "healthy", {}, [0, 1], 150)
    bad = validate.validate_file(str(stuck), "healthy", {}, [0, 1], 150)
    assert ok["verdict"] == "ok", ok
    assert bad["verdict"] == "broken"
    assert "needed < 0.7 x initial" in bad["seeds"]["0"]["why"]
    # lr 0 changes nothing: the frozen symptom sees every parameter unchanged.
    trace = validate.train(load_model_file(stuck), 0, steps=5)
    assert validate.symptom_ok("frozen", trace)[0]
    assert not validate.symptom_ok("frozen", validate.train(load_model_file(good), 0, steps=5))[0]


def test_cli_exit_status_and_json(tmp_path, capsys):
    stuck = _file(tmp_path, "stuck.py", CLASSIFIER.format(lr=0.0))
    out = tmp_path / "validation.json"
    code = validate.main(["--kind", "healthy", "--seeds", "0", "--steps", "20", "--output", str(out), str(stuck)])
    assert code == 1
    data = json.loads(out.read_text())
    (entry,) = data["files"].values()
    assert entry["verdict"] == "broken" and entry["seeds"]["0"]["ok"] is False
    assert "stuck.py" in capsys.readouterr().out


def test_nan_stops_and_matches_nan_symptom(tmp_path):
    path = _file(tmp_path, "nan.py", """
        import torch
        import torch.nn as nn
        def build_model():
            return nn.Linear(3, 1)
        def sample_batch():
            return torch.ones(4, 3), torch.ones(4, 1)
        def training_step(model, batch):
            x, y = batch
            return (torch.log(model(x) - 1e6) - y).pow(2).mean()
        """)
    trace = validate.train(load_model_file(path), 0, steps=50)
    assert len(trace.losses) == 1 and not trace.finite
    assert validate.symptom_ok("nan", trace)[0]
    assert not validate.healthy_ok(trace)[0]
    assert validate.symptom_ok("diverges", trace)[0]


@pytest.mark.parametrize("out_shape,tgt_shape,expected", [
    ((6, 4), (6,), 4), ((6, 4, 5), (6, 5), 4), ((6, 5, 4), (6, 5), 4), ((6, 1), (6, 1), None),
])
def test_batch_accuracy_shapes(out_shape, tgt_shape, expected):
    out = torch.randn(out_shape)
    tgt = torch.randint(0, 4, tgt_shape) if expected else torch.ones(tgt_shape)
    acc, classes = validate.batch_accuracy(out, tgt)
    assert classes == expected
    if expected:
        dim = 1 if out.shape[:1] + out.shape[2:] == tgt.shape else -1
        assert acc == pytest.approx((out.argmax(dim) == tgt).float().mean().item())
