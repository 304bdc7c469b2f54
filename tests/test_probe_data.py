"""The data probe judges the targets that reach the loss (issue 9): the class count comes from
the loss's own input, whatever the model's output shape, and labels a file's own step builds are
not the batch's."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nndiag
from nndiag.report import Status

SEEDS = [0, 1, 2]
VOCAB, T, N = 50, 7, 6


class TinyLM(nn.Module):
    """A word-level LM as in pytorch/examples: output (seq*batch, vocab)."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.rnn = nn.LSTM(16, 16)
        self.out = nn.Linear(16, VOCAB)

    def forward(self, x):  # x: (T, N) token ids
        h, _ = self.rnn(self.emb(x))
        return self.out(h).view(-1, VOCAB)


class Tagger(nn.Module):
    """A tagger whose output is (N, T, V); the loss flattens it."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, 16)
        self.out = nn.Linear(16, VOCAB)

    def forward(self, x):  # (N, T)
        return self.out(self.emb(x))


def tokens(seed, shape):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, shape, generator=g)


def naive_classes_and_max_target(output, targets):
    """By hand: what F.cross_entropy sees after the usual flattening."""
    return output.reshape(-1, output.shape[-1]).shape[1], int(targets.max())


@pytest.mark.parametrize("seed", SEEDS)
def test_word_lm_with_flattened_output_passes(seed):
    x, y = tokens(seed, (T, N)), tokens(seed + 10, (T, N))
    r = nndiag.check_probe("data", seed=seed, model=TinyLM, batch=(x, y.reshape(-1)),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS, r.summary
    classes, top = naive_classes_and_max_target(TinyLM()(x), y)
    assert r.metrics["classes"] == classes == VOCAB
    assert r.metrics["target_max"] == top


@pytest.mark.parametrize("seed", SEEDS)
def test_tagger_whose_loss_reshapes_passes_and_out_of_range_ids_fail(seed):
    def loss_fn(out, y):
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    x, y = tokens(seed, (N, T)), tokens(seed + 10, (N, T))
    r = nndiag.check_probe("data", seed=seed, model=Tagger, batch=(x, y), loss_fn=loss_fn)
    assert r.status is Status.PASS, r.summary
    assert r.metrics["classes"] == VOCAB
    y_bad = y.clone()
    y_bad[0, 0] = VOCAB + 3  # one id past the vocabulary
    report = nndiag.check(probes=["data"], seed=seed, model=Tagger, batch=(x, y_bad),
                          loss_fn=loss_fn)
    # The loss raises on such ids, so nothing else can run: the file-level message carries the
    # data probe's diagnosis (else the data probe's fail does).
    subject = report.subjects[0]
    message = subject.load_error or subject.result("data").findings[0].message
    assert report.exit_code() != 0
    assert str(VOCAB + 3) in message and "0..49" in message, message


class TinyGAN(nn.Module):
    def __init__(self):
        super().__init__()
        self.g = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8))
        self.d = nn.Sequential(nn.Linear(8, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1), nn.Sigmoid())

    def forward(self, x):
        return self.d(x)


def gan_train_step(model, optimizer, batch):
    """One optimizer over both nets: the discriminator's real/fake labels are made here."""
    real, _class_labels = batch
    bce = nn.BCELoss()
    fake = model.g(torch.randn(real.shape[0], 4))
    optimizer.zero_grad()
    d_loss = bce(model.d(real), torch.ones(real.shape[0], 1)) + \
        bce(model.d(fake.detach()), torch.zeros(real.shape[0], 1))
    d_loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    g_loss = bce(model.d(fake), torch.ones(real.shape[0], 1))
    g_loss.backward()
    optimizer.step()
    return float(d_loss + g_loss)


@pytest.mark.parametrize("seed", SEEDS)
def test_gan_building_its_own_labels_is_not_judged_on_the_class_labels(seed):
    g = torch.Generator().manual_seed(seed)
    real, labels = torch.randn(16, 8, generator=g), torch.randint(0, 10, (16,), generator=g)
    r = nndiag.check_probe("data", seed=seed, model=TinyGAN, batch=(real, labels),
                           train_step=gan_train_step)
    assert r.status is Status.PASS, [f.message for f in r.findings]
    assert r.metrics["loss_calls"] == 3  # two discriminator terms and the generator's


@pytest.mark.parametrize("seed", SEEDS)
def test_constant_targets_fail_only_when_the_loss_consumes_them(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 8, generator=g)
    y = torch.zeros(32, dtype=torch.long)
    r = nndiag.check_probe("data", seed=seed, model=lambda: nn.Linear(8, 3), batch=(x, y),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL and r.findings[0].where == "targets"
    # A GAN file whose class labels happen to be all one class: its step never uses them.
    real = torch.randn(16, 8, generator=g)
    r = nndiag.check_probe("data", seed=seed, model=TinyGAN, batch=(real, torch.zeros(16)),
                           train_step=gan_train_step)
    assert r.status is Status.PASS
    assert any(f.severity is Status.PASS and "identical" in f.message for f in r.findings)


def digits(seed, n=256):
    """Real data: scikit-learn's bundled 8x8 digits, scaled to [0, 1], a shuffled sample."""
    from sklearn.datasets import load_digits

    d = load_digits()
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(d.target), generator=g)[:n]
    return (torch.tensor(d.data[idx.numpy()], dtype=torch.float32) / 16,
            torch.tensor(d.target[idx.numpy()]))


def naive_1nn_accuracy(x, y):
    """By hand, one sample at a time: the label of the nearest other sample (standardised)."""
    x = (x.double() - x.double().mean(0)) / x.double().std(0).clamp_min(1e-12)
    right = 0
    for i in range(len(x)):
        d = ((x - x[i]) ** 2).sum(1)
        d[i] = float("inf")
        right += int(y[int(d.argmin())] == y[i])
    return right / len(x)


def digits_mlp():
    return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


@pytest.mark.parametrize("seed", SEEDS)
def test_labels_shuffled_apart_from_their_inputs_fail(seed):
    x, y = digits(seed)
    r = nndiag.check_probe("data", seed=seed, model=digits_mlp, batch=(x, y),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS, [f.message for f in r.findings]
    assert r.metrics["label_nn_accuracy"] == pytest.approx(naive_1nn_accuracy(x, y))
    g = torch.Generator().manual_seed(100 + seed)
    y_shuffled = y[torch.randperm(len(y), generator=g)]
    r = nndiag.check_probe("data", seed=seed, model=digits_mlp, batch=(x, y_shuffled),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL and r.findings[0].metric == "label_signal_z"
    assert r.metrics["label_nn_accuracy"] == pytest.approx(naive_1nn_accuracy(x, y_shuffled))


@pytest.mark.parametrize("seed", SEEDS)
def test_features_scaled_twice_fail_and_raw_or_standard_features_pass(seed):
    g = torch.Generator().manual_seed(seed)
    raw = torch.randn(128, 10, generator=g) * torch.tensor([1.0, 5, 20, 0.5, 3, 100, 2, 8, 1, 40])
    y = (raw[:, 0] + raw[:, 3] > 0).long()
    standard = (raw - raw.mean(0)) / raw.std(0)

    def model():
        return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 2))

    for x in (raw, standard):
        r = nndiag.check_probe("data", seed=seed, model=model, batch=(x, y),
                               loss_fn=nn.CrossEntropyLoss())
        assert not any(f.metric == "feature_std_median" for f in r.findings), r.summary
    twice = standard / 255  # image preprocessing applied to already standardised features
    r = nndiag.check_probe("data", seed=seed, model=model, batch=(twice, y),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.FAIL
    assert r.metrics["feature_std_median"] == pytest.approx(float(twice.double().std(0).median()))


def test_one_class_dominating_many_warns():
    x, y = digits(0)
    keep = torch.cat([torch.nonzero(y == 0).flatten(), torch.nonzero(y != 0).flatten()[:6]])
    r = nndiag.check_probe("data", model=digits_mlp, batch=(x[keep], y[keep]),
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.WARN and r.findings[0].metric == "majority_fraction"
    assert r.metrics["majority_fraction"] == pytest.approx(float((y[keep] == 0).double().mean()))


@pytest.mark.parametrize("seed", SEEDS)
def test_random_smoke_test_data_is_not_called_shuffled(seed):
    # The README's example batch: random inputs, random labels. Unrelated by construction, and the
    # independent random features say so: a fact, not a failure.
    g = torch.Generator().manual_seed(seed)
    batch = torch.randn(64, 784, generator=g), torch.randint(0, 10, (64,), generator=g)
    r = nndiag.check_probe("data", seed=seed, model=lambda: nn.Linear(784, 10), batch=batch,
                           loss_fn=nn.CrossEntropyLoss())
    assert r.status is Status.PASS
    assert r.metrics["feature_structure"] < 1.2
    assert any(f.metric == "label_signal_z" and f.severity is Status.PASS for f in r.findings)
