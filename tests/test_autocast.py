"""``--autocast off|bf16|fp16`` (nndiag.precision): every forward of the check runs under
torch.autocast, the option reaches the run from the CLI, ``nndiag_config``, the API and pytest,
bad values are refused with a message, and under fp16 nndiag's own step uses a GradScaler that
redoes an overflowed step at a lower scale and lets every reader see unscaled gradients."""

from __future__ import annotations

import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
from click.testing import CliRunner  # noqa: E402
from torch import nn  # noqa: E402

import nndiag  # noqa: E402
from nndiag.cli import main  # noqa: E402
from nndiag.errors import UsageError  # noqa: E402
from nndiag.precision import OFF, Precision, resolve_precision  # noqa: E402
from nndiag.subject import Subject  # noqa: E402
from nndiag.workbench import Workbench  # noqa: E402

SMALL = {"overfit": {"steps": 5}, "lr-range": {"num_it": 8}, "gradients": {"steps": 2},
         "nan": {"steps": 2}}

# A model that records, at every forward, whether autocast was on and in which dtype.
RECORDING = textwrap.dedent("""
    import torch
    import torch.nn as nn
    from autocast_sink import SEEN

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 16)
            self.fc2 = nn.Linear(16, 3)
        def forward(self, x):
            SEEN.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
            return self.fc2(torch.tanh(self.fc1(x)))

    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g)

    def build_model():
        return Net()

    def sample_batch():
        return X, Y

    loss_fn = nn.CrossEntropyLoss()
""")


@pytest.fixture
def recording(tmp_path, monkeypatch):
    """A model file whose forward records the autocast state in the sibling module autocast_sink
    (imported here first, so the test holds the very list the model file appends to)."""
    (tmp_path / "autocast_sink.py").write_text("SEEN = []\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "autocast_sink", raising=False)
    import autocast_sink  # noqa: F401

    path = tmp_path / "recording.py"
    path.write_text(RECORDING)
    yield path
    sys.modules.pop("autocast_sink", None)


def _check_and_seen(path, **kw):
    """Run the probes on ``path``; the report and the autocast states its forwards saw."""
    seen = sys.modules["autocast_sink"].SEEN
    seen.clear()
    report = nndiag.check(path, settings=SMALL, threads=1, **kw)
    return report, list(seen)


def test_every_forward_of_the_check_runs_under_bf16(recording):
    report, seen = _check_and_seen(recording, autocast="bf16")
    statuses = {r.probe: r.status.value for r in report.subjects[0].results}
    assert len(statuses) == 11 and "error" not in statuses.values(), statuses
    assert seen and len(seen) > 50, "the probes' forwards were not recorded"
    assert set(seen) == {(True, torch.bfloat16)}, f"forwards outside bf16 autocast: {set(seen)}"


def test_without_the_option_nothing_runs_under_autocast(recording):
    _, seen = _check_and_seen(recording)
    assert seen and not any(on for on, _ in seen)


def test_the_option_reaches_the_run_from_the_cli_and_the_file(recording, tmp_path):
    out = tmp_path / "r.json"
    result = CliRunner().invoke(main, ["check", str(recording), "--probe", "updates", "--autocast",
                                       "bf16", "--json", str(out), "--threads", "1"])
    assert result.exit_code == 0, result.output
    in_file = tmp_path / "in_file.py"
    in_file.write_text(RECORDING + '\nnndiag_config = {"autocast": "bf16"}\n')
    _, seen = _check_and_seen(in_file, probes=["updates"])
    assert seen and set(seen) == {(True, torch.bfloat16)}
    _, seen = _check_and_seen(in_file, probes=["updates"], autocast="off")  # the run's option wins
    assert seen and not any(on for on, _ in seen)


def test_a_bad_mode_is_refused_naming_the_choices(recording):
    result = CliRunner().invoke(main, ["check", str(recording), "--autocast", "fp8"])
    assert result.exit_code == 2 and "fp8" in result.output
    with pytest.raises(UsageError, match="must be one of off, bf16, fp16"):
        resolve_precision("fp8", "cpu")
    bad = recording.parent / "bad_cfg.py"
    bad.write_text(RECORDING + '\nnndiag_config = {"autocast": "int8"}\n')
    result = CliRunner().invoke(main, ["check", str(bad), "--probe", "params"])
    assert result.exit_code == 2 and "nndiag_config['autocast']" in result.output, result.output
    assert resolve_precision(None, "cpu") is OFF and resolve_precision("bfloat16", "cpu").mode == "bf16"


def test_the_pytest_option_sets_autocast_for_the_session(pytester):
    pytester.makepyfile(test_a='''
        def test_a(nndiag):
            assert nndiag.options()["autocast"] == "bf16"
    ''')
    pytester.runpytest("--nndiag-autocast", "bf16", "-p", "no:randomly").assert_outcomes(passed=1)


def test_fp16_on_cpu_names_the_kernels_it_lacks(tmp_path):
    path = tmp_path / "lstm.py"
    path.write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = nn.LSTM(3, 4, batch_first=True)
                self.fc = nn.Linear(4, 2)
            def forward(self, x):
                return self.fc(self.rnn(x)[0][:, -1])
        def build_model():
            return Net()
        def sample_batch():
            return torch.randn(8, 5, 3), torch.randint(0, 2, (8,))
        loss_fn = nn.CrossEntropyLoss()
    """))
    result = CliRunner().invoke(main, ["check", str(path), "--autocast", "fp16", "--probe", "updates"])
    if result.exit_code == 0:
        pytest.skip("this torch has an fp16 LSTM kernel on CPU")
    assert "use --autocast bf16 on CPU" in result.output, result.output
    # the same through the user's training_step (the error comes out of their call, not forward)
    own = tmp_path / "lstm_own_step.py"
    own.write_text(path.read_text().replace("loss_fn = nn.CrossEntropyLoss()", textwrap.dedent("""
        def training_step(model, batch):
            x, y = batch
            return nn.functional.cross_entropy(model(x), y)
    """)))
    result = CliRunner().invoke(main, ["check", str(own), "--autocast", "fp16", "--probe", "updates"])
    assert "training_step" in result.output and "use --autocast bf16 on CPU" in result.output, result.output
    # bf16 has the kernel: the same file checks
    assert CliRunner().invoke(main, ["check", str(own), "--autocast", "bf16", "--probe", "updates"]).exit_code == 0


# ---- the fp16 step: GradScaler ------------------------------------------------------------------
class Big(nn.Module):
    """Activation gradients of about 1 per element, so the loss scaled by 2**16 overflows float16
    in the backward (65536 > 65504) while the unscaled step is finite."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(8, 64)
        self.fc2 = nn.Linear(64, 1)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


BATCH = (torch.randn(16, 8, generator=torch.Generator().manual_seed(0)),
         torch.randn(16, 1, generator=torch.Generator().manual_seed(1)))


def _bench(precision: Precision) -> Workbench:
    subject = Subject("t", model_factory=Big, batches=lambda: [BATCH],
                      loss_fn=lambda out, y: ((out - y) ** 2).sum() * 50.0)
    return Workbench(subject, seed=0, precision=precision)


def test_fp16_step_redoes_an_overflowed_step_and_leaves_unscaled_gradients():
    bench = _bench(resolve_precision("fp16", "cpu"))
    model = bench.fresh_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    before = [p.detach().clone() for p in model.parameters()]
    result = bench.step(model, opt, BATCH, guard=lambda m: all(bool(torch.isfinite(p.grad).all())
                                                               for p in m.parameters()))
    scaler = bench.scalers.get(opt)
    assert bench.scalers.redone >= 1 and scaler.get_scale() < 2.0 ** 16, "no overflow was provoked"
    assert result.grads_finite is True and not result.skipped
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters())), "no update applied"
    # The gradients left behind are the true ones: those of an fp32 backward, up to fp16 rounding.
    ref = _bench(OFF)
    twin = ref.fresh_model()
    ref.backward(ref.compute_loss(twin, BATCH))
    for (name, p), q in zip(model.named_parameters(), twin.parameters()):
        rel = float((p.grad - q.grad).norm() / q.grad.norm())
        assert rel < 0.05, (name, rel)


def test_bf16_and_off_use_no_scaler():
    for precision in (OFF, resolve_precision("bf16", "cpu")):
        bench = _bench(precision)
        model = bench.fresh_model()
        opt = torch.optim.SGD(model.parameters(), lr=1e-4)
        bench.step(model, opt, BATCH)
        assert bench.scalers.get(opt) is None and bench.scalers.redone == 0


def test_fp16_overflow_even_unscaled_ends_the_retries_as_a_non_finite_gradient():
    subject = Subject("t", model_factory=Big, batches=lambda: [BATCH],
                      loss_fn=lambda out, y: ((out - y) ** 2).sum() * 1e9)
    bench = Workbench(subject, seed=0, precision=resolve_precision("fp16", "cpu"))
    model = bench.fresh_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4)
    before = [p.detach().clone() for p in model.parameters()]
    result = bench.step(model, opt, BATCH, guard=lambda m: all(bool(torch.isfinite(p.grad).all())
                                                               for p in m.parameters()))
    assert result.grads_finite is False and result.skipped
    assert bench.scalers.get(opt).get_scale() < 1.0  # backed off to below 1, then gave up
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_fp16_check_of_a_healthy_model_passes_without_nan_findings(recording):
    report = nndiag.check(recording, autocast="fp16", settings=SMALL, threads=1,
                          probes=["nan", "gradients", "updates", "overfit"])
    statuses = {r.probe: r.status.value for r in report.subjects[0].results}
    assert statuses["nan"] == "pass" and "error" not in statuses.values(), statuses


def test_a_half_model_under_fp16_gets_no_scaler_and_no_crash():
    """GradScaler refuses to unscale float16 gradients ("Attempting to unscale FP16 gradients"):
    a .half() model's steps run unscaled, as its own loop would have to."""
    half_batch = (BATCH[0].half(), BATCH[1].half())
    subject = Subject("t", model_factory=lambda: Big().half(), batches=lambda: [half_batch],
                      loss_fn=lambda out, y: ((out - y) ** 2).mean())
    bench = Workbench(subject, seed=0, precision=resolve_precision("fp16", "cpu"))
    model = bench.fresh_model()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    before = [p.detach().clone() for p in model.parameters()]
    result = bench.step(model, opt, half_batch)
    assert bench.scalers.get(opt) is None and not result.skipped
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
