"""The device plumbing, checked on a CPU-only machine (issue 12, CUDA part; docs/gpu.md).

A CPU run cannot show a tensor left on the wrong device: every tensor is on the CPU. What it can
show is where the code decides a tensor's device:

* an audit of every tensor nndiag itself creates during real checks and a watched loop: a torch
  factory call (``torch.zeros``, ``torch.tensor``, ``torch.randn``, ...) made from nndiag's own
  code without ``device=`` makes a CPU tensor whatever device the check runs on. Each such call
  site must be one reviewed here, with the reason it is right (a CPU generator whose numbers are
  then moved to the data's device, a mask that is moved before it indexes, a CPU-only scratch
  value); a new one fails with its file and line;
* ``--device auto|cuda|cuda:N`` resolution and the CUDA set-up before the RNG capture;
* the workbench putting the model, the batches, the optimizer's parameters and the loss module on
  the device it is given, checked with torch's ``meta`` device (a second device every CPU build
  has), while the user's own objects stay where they were;
* the message for the user's own code making a CPU tensor on a CUDA run.

Real CUDA runs are in tests/test_gpu.py (marked ``gpu``; they skip here).
"""

from __future__ import annotations

import collections
import linecache
import os
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

import nndiag
from nndiag.errors import UsageError
from nndiag.runner import prepare_device, resolve_device
from nndiag.subject import Subject, copy_user_model, loss_on_device
from nndiag.workbench import Workbench

REPO = Path(__file__).resolve().parents[1]
PKG = str(Path(nndiag.__file__).resolve().parent) + os.sep
TORCH = str(Path(torch.__file__).resolve().parent) + os.sep
# Frames between the caller and the audit that are not the caller: nndiag's own tracer re-issues
# every call it watches, torch's mode machinery dispatches it.
PASS_THROUGH = (PKG + "torchhooks.py", TORCH + "overrides.py",
                TORCH + "utils" + os.sep + "_python_dispatch.py")
FACTORIES = {"zeros", "ones", "empty", "full", "tensor", "as_tensor", "randn", "rand", "randint",
             "arange", "linspace", "logspace", "eye", "randperm", "normal", "numpy"}

#: Factory calls without device= in nndiag's code, reviewed: (file, text on the line) -> why it is
#: right on any device. The text is matched inside the source line, so moving the line is fine.
REVIEWED = {
    ("watch/recorder.py", "self._found_view = self._found.numpy()"):
        "a NumPy view of the flag, taken only when the flag is on the CPU; no tensor is made",
    ("probes/batch_independence/__init__.py", "torch.randn(own.shape, generator=gen).to("):
        "a CPU generator gives the same weights on every device; moved to the output's device",
    ("probes/batch_independence/inputs.py", "torch.randn(t[i].shape, generator=gen).to("):
        "a CPU generator gives the same perturbation on every device; moved to the input's device",
    ("probes/batch_independence/inputs.py", "torch.randint(0, flat.numel(), t[i].shape, generator=gen).to("):
        "a CPU generator picks the same token ids on every device; moved to the input's device",
    ("probes/batch_independence/compare.py", "keep = torch.ones(n, dtype=torch.bool)"):
        "a CPU mask whose indices are moved to the diff's device before index_select",
    ("label_signal.py", "torch.linspace(0, x.shape[1] - 1, max_features).long().to(x.device)"):
        "indices computed on the CPU (the same features on every device), then moved",
    ("runner.py", "torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)"):
        "warms torch.optim up once per process; never meets the user's tensors",
    ("precision.py", "float(torch.tensor(eps, dtype=torch.float16))"):
        "a CPU scalar rounded to float16 and read back at once (Adam's eps test): never meets the data",
    # the in-training watch (nndiag/watch/, not this file's owners; see docs/gpu.md)
    ("watch/recorder.py", "torch.tensor(self._layer_index)"):
        "CPU indices into the device one-hot matrix: torch moves index tensors to the indexed device",
    ("watch/recorder.py", "torch.arange(len(self.names))"):
        "CPU indices into the device one-hot matrix: torch moves index tensors to the indexed device",
    ("watch/recorder.py", "return torch.zeros(len(self.params))"):
        "no gradient at all this step: a CPU row, moved to the other rows' device at the flush",
}


class FactoryAudit(TorchFunctionMode):
    """Records torch factory calls made directly by nndiag's code without a ``device=``."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: collections.Counter = collections.Counter()
        self.seen = 0  # every torch call the mode intercepted: proof that it is hooked in

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.seen += 1
        if getattr(func, "__name__", "") in FACTORIES and "device" not in kwargs:
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(PASS_THROUGH):
                frame = frame.f_back
            file = frame.f_code.co_filename if frame is not None else ""
            if file.startswith(PKG):
                line = linecache.getline(file, frame.f_lineno).strip()
                self.calls[(file[len(PKG):].replace(os.sep, "/"), frame.f_lineno, line)] += 1
        return func(*args, **kwargs)

    def unreviewed(self) -> list[str]:
        """The call sites not in REVIEWED, as 'file:line: source' strings."""
        out = []
        for (file, lineno, line), n in sorted(self.calls.items()):
            if not any(file == f and text in line for f, text in REVIEWED):
                out.append(f"nndiag/{file}:{lineno}: {line} ({n} call(s))")
        return out


SMALL = {"overfit": {"steps": 20}, "lr-range": {"num_it": 12}, "gradients": {"steps": 2},
         "nan": {"steps": 3}, "dead-neurons": {"steps": 2}}

AUDITED_FILES = ("reference_models/xor.py", "reference_models/broken/mlp_log_softmax_nan.py",
                 "reference_models/zoo/healthy/batchnorm_batch_size_2.py",
                 "reference_models/zoo/bugs/tokens_bag_classifier.py",
                 "reference_models/zoo/healthy/multilabel_mlp_bce.py")


def test_every_tensor_nndiag_creates_in_a_check_follows_the_device():
    """Every factory call nndiag makes during full checks (every probe, a NaN located by the
    replay, BatchNorm, token ids, multi-label BCE) passes device= or is reviewed above."""
    audit = FactoryAudit()
    with audit:
        for path in AUDITED_FILES:
            report = nndiag.check(REPO / path, settings=SMALL, threads=1)
            assert not report.subjects[0].load_error, report.subjects[0].load_error
            assert len(report.subjects[0].results) >= 10  # every probe ran
    assert audit.calls, "the audit saw no factory call at all: it is not hooked in"
    bad = audit.unreviewed()
    assert not bad, ("nndiag made CPU tensors without device= during a check (they stay on the "
                     "CPU under --device cuda); pass device= the data's device, or review them in "
                     "REVIEWED with the reason they are right:\n" + "\n".join(bad))


def test_the_audit_catches_a_cpu_tensor_made_by_nndiag():
    """The audit itself can fail: a device-less factory call in a module of nndiag is reported,
    one with device= is not."""
    code = compile("import torch\ntorch.zeros(3)\ntorch.ones(2, device='cpu')\n",
                   PKG + "not_a_real_module.py", "exec")
    audit = FactoryAudit()
    with audit:
        exec(code, {})  # noqa: S102 - code "written in nndiag", to see the audit fire
    assert [row.split(":")[:2] for row in audit.unreviewed()] == [["nndiag/not_a_real_module.py", "2"]]


def test_every_tensor_the_watch_creates_follows_the_device():
    """The watch's steady state, a sample step and a NaN stop make no unreviewed CPU tensor."""
    from tests.watch_helpers import batches

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = batches(0)
    audit = FactoryAudit()
    with audit, nndiag.watch(model, opt, log_every=5, sample_every=10, policy="report") as w:
        for step in range(30):
            x, y = next(data)
            if step == 25:
                x = x * float("nan")  # the replay path too
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            w.step(loss)
    assert audit.seen  # the watch itself may make no device-less tensor at all
    bad = audit.unreviewed()
    assert not bad, "the watch made CPU tensors without device=:\n" + "\n".join(bad)


# ---- --device ------------------------------------------------------------------------------------
def test_auto_is_cpu_without_a_gpu_and_cuda_with_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"


def test_cuda_without_a_gpu_is_a_usage_error_naming_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UsageError) as exc:
        resolve_device("cuda")
    assert "no CUDA GPU" in str(exc.value) and "--device auto" in exc.value.hint


def test_a_gpu_index_beyond_the_gpus_present_is_a_usage_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert resolve_device("cuda:0") == "cuda:0"
    with pytest.raises(UsageError, match=r"cuda:3.*1 CUDA GPU"):
        resolve_device("cuda:3")
    with pytest.raises(UsageError, match="Unknown device"):
        resolve_device("tpu")


def test_cuda_is_initialised_before_the_rng_capture(monkeypatch):
    """CUDA is set up before the check snapshots the generators, so the CUDA generator is
    captured and restored (contract §4); nothing is initialised for a CPU run."""
    calls = []
    monkeypatch.setattr(torch.cuda, "init", lambda: calls.append("init"))
    prepare_device("cpu")
    assert calls == []
    prepare_device("cuda")
    prepare_device("cuda:0")
    assert calls == ["init", "init"]

    import nndiag.runner as runner
    from nndiag.seeding import RngState

    order = []
    real_capture = RngState.capture.__func__
    monkeypatch.setattr(runner, "prepare_device", lambda d: order.append(("prepare", d)))
    monkeypatch.setattr(RngState, "capture", classmethod(
        lambda cls: (order.append(("capture", None)), real_capture(cls))[1]))
    from nndiag.options import RunOptions

    runner.check_subject(_subject(), RunOptions(probes=("params",)))  # no file to load first
    assert order[0] == ("prepare", "cpu") and ("capture", None) in order[1:]


# ---- the workbench on another device (meta: shapes only, on every build) ----------------------
def _subject(**kw) -> Subject:
    torch.manual_seed(0)
    user = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 3))
    batch = (torch.randn(16, 4), torch.randint(0, 3, (16,)))
    return Subject("meta-test", copy_user_model(user), batches=lambda: [batch],
                   loss_fn=torch.nn.CrossEntropyLoss(), user_model=user, model_source="model", **kw)


def test_the_workbench_puts_model_batches_and_optimizer_on_its_device():
    subject = _subject()
    bench = Workbench(subject, device="meta")
    model = bench.fresh_model()
    assert {t.device.type for t in [*model.parameters(), *model.buffers()]} == {"meta"}
    assert {t.device.type for t in bench.first_batch()} == {"meta"}
    opt = bench.make_optimizer(model)
    held = [p for g in opt.param_groups for p in g["params"]]
    assert held and {p.device.type for p in held} == {"meta"}
    # the user's own model never moved
    assert {p.device.type for p in subject.user_model.parameters()} == {"cpu"}


def test_a_loss_module_with_class_weights_is_moved_as_a_copy():
    weights = torch.tensor([1.0, 2.0, 3.0])
    user_loss = torch.nn.CrossEntropyLoss(weight=weights)
    moved = loss_on_device(user_loss, "meta")
    assert moved is not user_loss and moved.weight.device.type == "meta"
    assert user_loss.weight is weights and weights.device.type == "cpu"  # the user's, untouched
    assert loss_on_device(user_loss, "cpu") is user_loss  # already there: no copy
    plain = torch.nn.MSELoss()
    assert loss_on_device(plain, "meta") is plain  # nothing to move
    fn = torch.nn.functional.cross_entropy
    assert loss_on_device(fn, "meta") is fn


def test_the_check_moves_the_loss_module(monkeypatch):
    """check_subject hands the workbench a subject whose loss module is on the check's device."""
    import nndiag.runner as runner

    seen = []
    real = runner.subject_on_device
    monkeypatch.setattr(runner, "subject_on_device",
                        lambda s, d: seen.append(real(s, "meta")) or s)
    nndiag.check(model=torch.nn.Linear(3, 3), batch=(torch.randn(8, 3), torch.randint(0, 3, (8,))),
                 loss_fn=torch.nn.CrossEntropyLoss(weight=torch.ones(3)), probes=["params"])
    assert seen and seen[0].loss_fn.weight.device.type == "meta"


def test_user_code_making_cpu_tensors_gets_a_device_hint(tmp_path):
    """A CUDA run of a forward that makes its own CPU tensor fails with torch's device error;
    the message says how to fix it (simulated: torch's own message, raised by the file)."""
    f = tmp_path / "m.py"
    f.write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(3, 2)
            def forward(self, x):
                raise RuntimeError("Expected all tensors to be on the same device, but found at "
                                   "least two devices, cuda:0 and cpu!")
        def build_model(): return Net()
        def sample_batch(): return torch.randn(4, 3), torch.randint(0, 2, (4,))
        loss_fn = nn.CrossEntropyLoss()
    """))
    report = nndiag.check(f, probes=["nan"])
    sub = report.subjects[0]
    text = (sub.load_error or "") + " ".join(f.message for r in sub.results for f in r.findings)
    assert "device=x.device" in text and "register_buffer" in text


# ---- the CUDA seed queued before CUDA is used ---------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_initialized() or not hasattr(torch.cuda, "_lazy_seed_tracker"),
                    reason="needs a torch that queues CUDA seeds, with CUDA not yet initialised")
def test_a_file_seeding_torch_at_import_leaves_the_users_queued_cuda_seed(tmp_path):
    """Before CUDA is used, ``torch.manual_seed(s)`` queues the seed for CUDA's generators. A model
    file that seeds torch at import, and the check's own seeding, queue theirs over it; afterwards
    the user's queued seed is the one CUDA will start from, as before the check (contract §4)."""
    f = tmp_path / "seeds.py"
    f.write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        torch.manual_seed(123)  # at import, as many scripts do
        def build_model(): return nn.Linear(3, 2)
        def sample_batch(): return torch.randn(8, 3), torch.randint(0, 2, (8,))
        loss_fn = nn.CrossEntropyLoss()
    """))
    tracker = torch.cuda._lazy_seed_tracker
    torch.manual_seed(5)
    queued = (tracker.manual_seed_all_cb, list(tracker.call_order))
    nndiag.check(f, probes=["gradients", "overfit"], settings=SMALL)
    assert tracker.manual_seed_all_cb is queued[0] and tracker.call_order == queued[1]
