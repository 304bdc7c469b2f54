"""The batch-independence probe: one sample's input must not change another sample's output."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import nndiag
from nndiag.probes.batch_independence.compare import one_sample as _one_sample

REPO_BROKEN = "reference_models/broken"
LOSS = nn.CrossEntropyLoss()


def result(path=None, **kw):
    return nndiag.check_probe("batch-independence", path, **kw)


def seq_data(seed=0, n=16, t=4, f=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, t, f, generator=g), torch.randint(0, 2, (n,), generator=g)


class SoftmaxOverBatch(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        return torch.log_softmax(self.fc(x.flatten(1)), dim=0)


class SeqNet(nn.Module):
    """LSTM(batch_first=False); ``mode`` says how batch-first data reaches it."""

    def __init__(self, mode):
        super().__init__()
        self.mode = mode
        self.lstm = nn.LSTM(3, 8)
        self.fc = nn.Linear(8, 2)

    def forward(self, x):
        n, t, f = x.shape
        if self.mode == "permute":
            x = x.permute(1, 0, 2)
        elif self.mode == "view":
            x = x.view(t, n, f)
        out, _ = self.lstm(x)
        return self.fc(out[-1] if self.mode != "none" else out[:, -1])


class BNNet(nn.Module):
    def __init__(self, track=True):
        super().__init__()
        self.fc = nn.Linear(12, 6)
        self.bn = nn.BatchNorm1d(6, track_running_stats=track)
        self.out = nn.Linear(6, 2)

    def forward(self, x):
        return self.out(torch.relu(self.bn(self.fc(x.flatten(1)))))


# ---- (1) numbers against a naive re-computation -------------------------------------------------
def test_affected_samples_and_gradient_leak_match_naive():
    torch.manual_seed(0)
    model = SoftmaxOverBatch()
    x, y = seq_data()
    r = result(model=model, batch=(x, y), loss_fn=nn.NLLLoss())
    n = r.metrics["samples"]
    assert r.status == "fail" and "log_softmax" in r.summary
    # naive forward: perturb sample 0 of the first n, count other samples whose output moved
    xs = x[:n]
    xp = xs.clone()
    xp[0] += torch.randn(xp[0].shape)
    with torch.no_grad():
        moved = (model(xs) - model(xp)).abs().amax(dim=1) > 1e-5 * model(xs).abs().max()
    assert r.metrics["affected_samples"] == int(moved[1:].sum()) == n - 1
    # naive backward: the Jacobian of sample 0's output with respect to the other inputs
    jac = torch.autograd.functional.jacobian(lambda inp: model(inp)[0], xs)  # (C, n, T, F)
    assert float(jac[:, 1:].abs().max()) > 0
    assert r.metrics["gradient_leak"] > 1e-5


def test_batch_dimension_detection():
    n = 5
    m = torch.zeros(4, n, 3, dtype=torch.bool)
    m[:, 2, :] = True  # one sample along dim 1 (an RNN's (T, N, F))
    assert _one_sample(m, n, None)[0] is True
    m[0, 3, 0] = True  # a second sample touched
    assert _one_sample(m, n, None)[0] is False
    flat = torch.zeros(n * 4, 2, dtype=torch.bool)
    flat[8:12] = True  # reshape(N*T, F): sample 2's block of 4 rows
    assert _one_sample(flat, n, None)[0] is True
    flat[0] = True
    assert _one_sample(flat, n, None)[0] is False
    assert _one_sample(torch.ones(3, dtype=torch.bool), n, None)[0] is None  # no batch-like dim
    # the strict rule for the output: only sample i may change
    out = torch.zeros(n, 2, dtype=torch.bool)
    out[1] = True
    assert _one_sample(out, n, 1)[0] is True and _one_sample(out, n, 0)[0] is False


# ---- (2) healthy models pass ----------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_models_pass(seed):
    torch.manual_seed(seed)
    cases = [
        (nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 2)), seq_data(seed)),
        (SeqNet("permute"), seq_data(seed)),
        (BNNet(), seq_data(seed)),  # BatchNorm in eval mode uses running statistics
        (nn.Sequential(nn.Embedding(20, 4), nn.Flatten(), nn.Linear(24, 2)),
         (torch.randint(0, 20, (16, 6)), torch.randint(0, 2, (16,)))),
    ]
    for model, batch in cases:
        r = result(model=model, batch=batch, loss_fn=LOSS, seed=seed)
        assert r.status == "pass", (type(model).__name__, r.summary, r.findings)


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


def test_batch_statistics_in_eval_mode_skip_with_reason():
    r = result(model=BNNet(track=False), batch=seq_data(), loss_fn=LOSS)
    assert r.status == "skip" and "batch statistics" in r.summary


# ---- (3) broken models fail -----------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name, where, needle", [
    ("digits_lstm_view_not_permute", "<model>", "Tensor.view"),
    ("digits_softmax_over_batch", "<model>", "log_softmax"),
    ("digits_custom_batch_norm", "norm", "Tensor.mean"),
])
def test_broken_variants_fail(name, where, needle, seed):
    r = result(path=f"{REPO_BROKEN}/{name}.py", seed=seed)
    assert r.status == "fail", r.summary
    fail = [f for f in r.findings if f.severity == "fail"][0]
    assert fail.where == where and needle in fail.message, fail


def test_lstm_without_batch_first_fed_batch_first_data_fails():
    torch.manual_seed(0)
    r = result(model=SeqNet("none"), batch=seq_data(), loss_fn=LOSS)
    assert r.status == "fail"
    assert r.findings[0].where == "lstm" and "batch_first=False" in r.findings[0].message


def test_dict_inputs_and_mixing_inside_a_submodule():
    class Inner(nn.Module):
        def forward(self, h):
            return F.softmax(h, dim=0)

    class DictNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.mix = nn.Linear(3, 4), nn.Linear(2, 4), Inner()

        def forward(self, x, z):
            return self.mix(self.a(x) + self.b(z))

    g = torch.Generator().manual_seed(0)
    batch = ({"x": torch.randn(10, 3, generator=g), "z": torch.randn(10, 2, generator=g)},
             torch.randint(0, 4, (10,), generator=g))
    r = result(model=DictNet(), batch=batch, loss_fn=LOSS)
    assert r.status == "fail" and r.findings[0].where == "mix"


# ---- (4) the user's model is left bit-for-bit unchanged -------------------------------------------
def test_user_model_untouched():
    torch.manual_seed(0)
    model = BNNet()
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    result(model=model, batch=seq_data(), loss_fn=LOSS)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert not model._forward_hooks and not model.bn._forward_hooks


class PackedBiLSTM(nn.Module):
    """A packed-sequence BiLSTM classifier (pytorch tutorials' pattern): packing sorts samples by
    length and interleaves them in time, yet each sample's output depends on its own tokens only."""

    def __init__(self, mix: bool = False):
        super().__init__()
        self.mix = mix
        self.emb = nn.Embedding(30, 8, padding_idx=0)
        self.rnn = nn.LSTM(8, 8, batch_first=True, bidirectional=True)
        self.out = nn.Linear(16, 3)

    def forward(self, x, lengths):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

        packed = pack_padded_sequence(self.emb(x), lengths, batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True)
        mask = (torch.arange(h.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1)
        pooled = (h * mask).sum(1) / lengths[:, None]
        if self.mix:  # a real mixing bug on top: centring over the batch
            pooled = pooled - pooled.mean(0, keepdim=True)
        return self.out(pooled)


def packed_batch(seed):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 10, (12,), generator=g)
    x = torch.zeros(12, 10, dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, :n] = torch.randint(1, 30, (int(n),), generator=g)
    return (x, lengths), torch.randint(0, 3, (12,), generator=g)


def naive_output_moves(model, inputs, i):
    """By hand: which other samples' outputs move when sample i's tokens change."""
    x, lengths = inputs
    model.eval()
    with torch.no_grad():
        base = model(x, lengths)
        x2 = x.clone()
        x2[i, : int(lengths[i])] = (x2[i, : int(lengths[i])] % 29) + 1
        moved = (model(x2, lengths) - base).abs().amax(1) > 1e-5
    return [j for j in range(len(x)) if moved[j] and j != i]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_packed_sequences_regroup_but_do_not_mix(seed):
    batch = packed_batch(seed)
    torch.manual_seed(seed)
    assert naive_output_moves(PackedBiLSTM(), batch[0], 0) == []
    r = result(model=PackedBiLSTM, batch=batch, loss_fn=LOSS, seed=seed)
    assert r.status.value == "pass", r.summary
    assert any(f.metric == "regrouped" for f in r.findings)  # the fact is recorded
    torch.manual_seed(seed)
    assert naive_output_moves(PackedBiLSTM(mix=True), batch[0], 0) != []
    r = result(model=lambda: PackedBiLSTM(mix=True), batch=batch, loss_fn=LOSS, seed=seed)
    assert r.status.value == "fail"


class KeywordLM(nn.Module):
    """Hugging Face style: model(**batch) with input_ids and attention_mask; labels in the batch."""

    def __init__(self, mix: bool = False):
        super().__init__()
        self.mix = mix
        self.emb = nn.Embedding(20, 8)
        self.out = nn.Linear(8, 20)

    def forward(self, input_ids, attention_mask):
        h = self.emb(input_ids) * attention_mask.unsqueeze(-1)
        if self.mix:
            h = torch.softmax(h, dim=0)  # over the batch
        return self.out(h)


def keyword_training_step(model, batch):
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    return F.cross_entropy(logits.reshape(-1, 20), batch["labels"].reshape(-1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dict_batches_of_keyword_inputs_with_a_training_step(seed):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 20, (9, 6), generator=g)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids.roll(1, 1)}
    r = result(model=KeywordLM, batch=batch, training_step=keyword_training_step, seed=seed)
    assert r.status.value == "pass", r.summary
    r = result(model=lambda: KeywordLM(mix=True), batch=batch, training_step=keyword_training_step,
               seed=seed)
    assert r.status.value == "fail" and "softmax" in r.summary
