"""CUDA (issue 12; docs/gpu.md): GPU-marked tests, and the CPU side of benchmarks/gpu_check.sh.

The tests marked ``gpu`` need a CUDA GPU and skip without one, saying so; a maintainer runs them
on a GPU machine with ``benchmarks/gpu_check.sh`` (or ``pytest -m gpu``):

* every reference model gives the same verdicts with ``device="cuda"`` as on the CPU;
* the watch's steady state makes no host sync on a step that is not one of its scheduled sync
  points (the finiteness flag and the flush, once each per log interval, and the sample steps),
  and how many steps per interval do sync is printed;
* the user's optimizer state stays on its device, in the watch and in a check;
* autocast on CUDA (bf16, and fp16 with a GradScaler) gives no false alarm;
* the user's CUDA generator is as it was after a check.

The script's CPU side (benchmarks/device_verdicts.py on two small files, its table, its exit
status) is tested in tests/test_gpu_check_script.py, which runs everywhere.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import nndiag

REPO = Path(__file__).resolve().parents[1]
HAS_CUDA = torch.cuda.is_available()
NO_GPU = "needs a CUDA GPU (torch.cuda.is_available() is False here); run benchmarks/gpu_check.sh on a GPU machine"


def gpu(test):
    """Mark a test as needing CUDA: ``-m gpu`` selects it, and it skips cleanly without a GPU."""
    return pytest.mark.gpu(pytest.mark.skipif(not HAS_CUDA, reason=NO_GPU)(test))


REFERENCE = sorted(str(p.relative_to(REPO)) for p in [
    *(REPO / "reference_models").glob("*.py"), *(REPO / "reference_models" / "broken").glob("*.py")]
    if not p.name.startswith("_") and p.stem not in ("data", "train"))


def _verdicts(report) -> dict[str, str]:
    sub = report.subjects[0]
    out = {r.probe: r.status.value for r in sub.results}
    out["<file>"] = "cannot be checked: " + sub.load_error if sub.load_error else "checked"
    return out


# ---- verdicts ----------------------------------------------------------------------------------
@gpu
@pytest.mark.parametrize("path", REFERENCE)
def test_reference_model_verdicts_on_cuda_equal_the_cpu(path):
    cpu = _verdicts(nndiag.check(REPO / path, device="cpu"))
    cuda = _verdicts(nndiag.check(REPO / path, device="cuda"))
    differ = {p: (cpu.get(p), cuda.get(p)) for p in {*cpu, *cuda} if cpu.get(p) != cuda.get(p)}
    assert not differ, f"{path}: verdicts differ (cpu, cuda): {differ}"


@gpu
def test_auto_resolves_to_cuda_and_the_check_runs_there(monkeypatch):
    from nndiag.runner import resolve_device
    from nndiag.workbench import Workbench

    assert resolve_device("auto") == "cuda"
    devices = []
    real = Workbench.fresh_model

    def spy(self, *a, **kw):
        model = real(self, *a, **kw)
        devices.extend({p.device.type for p in model.parameters()})
        return model

    monkeypatch.setattr(Workbench, "fresh_model", spy)
    nndiag.check(REPO / "reference_models/xor.py", device="auto", probes=["gradients"])
    assert devices and set(devices) == {"cuda"}


@gpu
def test_the_users_cuda_generator_is_restored_after_a_check():
    torch.cuda.manual_seed_all(1234)
    before = torch.cuda.get_rng_state_all()
    nndiag.check(REPO / "reference_models/xor.py", device="cuda", probes=["gradients", "overfit"])
    after = torch.cuda.get_rng_state_all()
    assert all(torch.equal(a, b) for a, b in zip(before, after))


_LAZY_RNG = """
import hashlib, sys, torch
torch.manual_seed(5)  # queued for CUDA, which is not initialised yet
if sys.argv[1] == "check":
    import nndiag
    nndiag.check(sys.argv[2], device="cuda", probes=["gradients"])
print(hashlib.sha256(bytes(torch.cuda.get_rng_state().tolist())).hexdigest())
"""


@gpu
def test_a_check_on_cuda_before_cuda_was_used_leaves_its_generator_as_seeded():
    """The user seeded torch before touching CUDA; a check on CUDA then initialises it: the CUDA
    generator afterwards is the one the seed gives (runner.prepare_device)."""
    def state(mode):
        done = subprocess.run([sys.executable, "-c", _LAZY_RNG, mode,
                               str(REPO / "reference_models/xor.py")], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    assert state("check") == state("plain")


@gpu
def test_a_loss_with_class_weights_on_the_cpu_works_on_cuda(tmp_path):
    f = tmp_path / "weighted.py"
    f.write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        def build_model(): return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))
        def sample_batch():
            g = torch.Generator().manual_seed(0)
            return torch.randn(64, 6, generator=g), torch.randint(0, 3, (64,), generator=g)
        loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 2.0, 0.5]))
    """))
    report = nndiag.check(f, device="cuda")
    sub = report.subjects[0]
    assert not sub.load_error, sub.load_error
    assert not [r.probe for r in sub.results if r.status.value == "error"]


@gpu
def test_a_forward_making_a_cpu_tensor_is_explained_on_cuda(tmp_path):
    f = tmp_path / "cpu_state.py"
    f.write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(6, 3)
            def forward(self, x):
                return self.fc(x) + torch.zeros(x.shape[0], 3)  # a CPU tensor: the bug
        def build_model(): return Net()
        def sample_batch(): return torch.randn(8, 6), torch.randint(0, 3, (8,))
        loss_fn = nn.CrossEntropyLoss()
    """))
    sub = nndiag.check(f, device="cuda").subjects[0]
    text = (sub.load_error or "") + " ".join(x.message for r in sub.results for x in r.findings)
    assert "device=x.device" in text


# ---- the watch: host syncs ---------------------------------------------------------------------
def _cuda_loop(steps: int, watch_kwargs: dict | None, sync_mode_for=lambda step: 0):
    """Train a small MLP on CUDA for ``steps`` steps (optionally watched); returns, per step, the
    number of synchronising CUDA calls torch reported (``set_sync_debug_mode``). ``sync_mode_for``
    says per step: 0 count (warn mode), 2 raise on the first sync (error mode)."""
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 128),
                                torch.nn.Tanh(), torch.nn.Linear(128, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xs = torch.randn(steps + 3, 32, 64, device=dev)
    ys = torch.randint(0, 10, (steps + 3, 32), device=dev)

    def one(i):
        opt.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(xs[i]), ys[i])
        loss.backward()
        opt.step()
        return loss

    for i in range(3):  # warm-up: kernels, the cuBLAS handle, Adam's state
        one(i)
    torch.cuda.synchronize()
    counts = []
    ctx = nndiag.watch(model, opt, policy="report", **watch_kwargs) if watch_kwargs is not None else None
    if ctx is not None:
        w = ctx.__enter__()
    try:
        for step in range(steps):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode(sync_mode_for(step) or 1)
                try:
                    loss = one(step + 3)
                    if ctx is not None:
                        w.step(loss)
                finally:
                    torch.cuda.set_sync_debug_mode(0)
            counts.append(sum("synchroniz" in str(m.message) for m in seen))
    finally:
        if ctx is not None:
            ctx.__exit__(None, None, None)
    return counts, (w if ctx is not None else None)


@gpu
def test_the_training_loop_of_these_tests_makes_no_sync_by_itself():
    """The control: without the watch, the loop below never syncs (so any sync is the watch's)."""
    counts, _ = _cuda_loop(30, None, sync_mode_for=lambda step: 2)
    assert counts == [0] * 30


@gpu
def test_the_watch_makes_no_host_sync_between_its_sync_points():
    """Steady state on CUDA: a step that is not the interval's last step (the finiteness flag and
    the flush, (step + 1) % log_every == 0) makes no host sync at all, sample steps included (their
    numbers wait on the device for the flush): torch's sync debug mode raises on the first one.
    The CPU twin, which counts host reads, is tests/test_watch_sync_points.py."""
    log_every, sample_every, steps = 10, 40, 80
    w_kw = {"log_every": log_every, "sample_every": sample_every}

    def scheduled(step):
        return (step + 1) % log_every == 0

    counts, w = _cuda_loop(steps, w_kw, sync_mode_for=lambda s: 0 if scheduled(s) else 2)
    assert w.sync_every == log_every  # on CUDA the flag is read once per log interval
    assert all(n == 0 for s, n in enumerate(counts) if not scheduled(s))
    syncing = [s for s, n in enumerate(counts) if n]
    print(f"\nwatch on CUDA, log_every={log_every}, sample_every={sample_every}: steps that sync "
          f"{syncing}; syncs per step {counts}")
    assert len(syncing) <= steps // log_every  # at most the intervals' last steps


@gpu
def test_a_nan_is_still_caught_with_the_flag_read_once_per_interval():
    """With one flag read per interval on CUDA, a NaN injected mid-interval is reported by the
    next flush at the latest (the report names the step)."""
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = torch.randn(16, 8, device=dev), torch.randint(0, 2, (16,), device=dev)
    with nndiag.watch(model, opt, policy="report", log_every=10) as w:
        for step in range(20):
            opt.zero_grad()
            xin = x * float("nan") if step == 13 else x
            loss = torch.nn.functional.cross_entropy(model(xin), y)
            loss.backward()
            opt.step()
            w.step(loss)
    nan = [r for r in w.report.subjects[0].results if r.probe == "watch.nan"]
    assert nan and nan[0].status.value == "fail"
    assert nan[0].data["events"][0]["step"] == 13


@gpu
@pytest.mark.parametrize("path", ["reference_models/xor.py", "reference_models/mlp.py"])
def test_nndiag_watch_trains_a_model_file_on_cuda(path):
    """`nndiag watch FILE --device cuda`: the driver's model, batches and steps on the GPU."""
    from click.testing import CliRunner

    from nndiag.cli import main

    r = CliRunner().invoke(main, ["watch", str(REPO / path), "--device", "cuda", "--steps", "60"])
    assert r.exit_code == 0, r.output


# ---- the user's optimizer state ----------------------------------------------------------------
def _state_devices(opt) -> dict:
    return {(i, k): (v.device.type, v.clone()) for i, st in enumerate(opt.state.values())
            for k, v in st.items() if isinstance(v, torch.Tensor)}


@gpu
def test_the_watch_leaves_the_users_optimizer_state_on_its_device():
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(16, 8, device=dev), torch.randint(0, 2, (16,), device=dev)
    plain = {}
    with nndiag.watch(model, opt, log_every=5, sample_every=5) as w:
        for _ in range(12):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            w.step(loss)
            plain = {k: d for k, (d, _) in _state_devices(opt).items()}
    kinds = {k[1]: d for k, d in plain.items()}
    assert kinds["exp_avg"] == "cuda" and kinds["exp_avg_sq"] == "cuda"
    assert kinds["step"] == "cpu"  # Adam keeps `step` on the CPU unless capturable=True


@gpu
@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_a_check_leaves_the_users_model_and_optimizer_where_they_are(device):
    """The user's own CUDA model and its optimizer (with state) come back bit for bit and on
    their device, whether the check runs on CUDA or on the CPU."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2)).cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = torch.randn(32, 8), torch.randint(0, 2, (32,))
    torch.nn.functional.cross_entropy(model(x.cuda()), y.cuda()).backward()
    opt.step()
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    state = _state_devices(opt)
    report = nndiag.check(model=model, batch=(x, y), loss_fn=torch.nn.CrossEntropyLoss(),
                          optimizer=opt, device=device,
                          settings={"overfit": {"steps": 20}, "lr-range": {"num_it": 10}})
    assert not report.subjects[0].load_error
    for n, p in model.named_parameters():
        assert p.device.type == "cuda" and torch.equal(p.detach(), params[n]), n
    after = _state_devices(opt)
    assert after.keys() == state.keys()
    for k, (dev, value) in state.items():
        assert after[k][0] == dev and torch.equal(after[k][1], value), k


# ---- mixed precision on CUDA -------------------------------------------------------------------
def _amp_run(dtype, use_scaler: bool):
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if use_scaler else None
    xs, ys = torch.randn(200, 32, 64, device=dev), torch.randint(0, 10, (200, 32), device=dev)
    events = []
    with nndiag.watch(model, opt, scaler=scaler, on_event=events.append, log_every=25) as w:
        for i in range(200):
            opt.zero_grad(set_to_none=True)
            with torch.autocast("cuda", dtype=dtype):
                loss = torch.nn.functional.cross_entropy(model(xs[i]), ys[i])
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            w.step(loss)
    return events, w


@gpu
@pytest.mark.parametrize("dtype,use_scaler", [(torch.bfloat16, False), (torch.float16, True)])
def test_autocast_on_cuda_gives_no_false_alarm(dtype, use_scaler):
    if dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    events, w = _amp_run(dtype, use_scaler)
    bad = [e for e in events if e.severity in ("warn", "fail")]
    assert not bad, [f"[{e.check}] step {e.step}: {e.message}" for e in bad]


@gpu
def test_the_bf16_autocast_zoo_file_keeps_its_verdicts_on_cuda():
    path = REPO / "reference_models/zoo/healthy/bf16_autocast_training_step.py"
    cpu = _verdicts(nndiag.check(path, device="cpu"))
    cuda = _verdicts(nndiag.check(path, device="cuda"))
    assert cpu == cuda
