"""State never changes (contract §4, issue 14): after any run, through the API, the CLI or one probe
at a time, the user's model, optimizer and process are as they were, bit for bit.

The model file takes its ``model`` and its optimizer from a sibling module the test imports first,
so the test holds the very objects nndiag sees: a notebook user's situation. The user's model has
a frozen layer, a submodule in eval mode, its own forward hook, gradients left from a backward, and
an SGD optimizer with momentum state; ``build_optimizer`` returns that optimizer itself. The file's
import also reseeds every generator, changes the working folder, ``sys.path`` and ``sys.argv``.
"""

from __future__ import annotations

import os
import random
import sys
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import nndiag
from nndiag.cli import main

SMALL = {"overfit": {"steps": 5}, "lr-range": {"num_it": 8}, "gradients": {"steps": 2},
         "nan": {"steps": 2}}
SMALL_ARGS = ["--set", "overfit.steps=5", "--set", "lr-range.num_it=8", "--set", "gradients.steps=2",
              "--set", "nan.steps=2", "--threads", "1"]

USER_MODULE = textwrap.dedent("""
    import torch
    import torch.nn as nn

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.bn = nn.BatchNorm1d(8)
            self.drop = nn.Dropout(0.1)
            self.fc2 = nn.Linear(8, 3)
        def forward(self, x):
            return self.fc2(self.drop(torch.relu(self.bn(self.fc1(x)))))

    CALLS = []
    g = torch.Generator().manual_seed(0)
    X, Y = torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)
    model = Net()
    model.fc1.bias.requires_grad_(False)           # a frozen parameter
    model.drop.eval()                              # a submodule in eval mode
    model.register_forward_hook(lambda m, i, o: CALLS.append(1))  # the user's own hook
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
    nn.functional.cross_entropy(model(X), Y).backward()
    opt.step()                                     # momentum buffers exist
    nn.functional.cross_entropy(model(X), Y).backward()  # .grad left on the parameters
""")

MODEL_FILE = textwrap.dedent("""
    import os, random, sys
    import numpy as np
    import torch
    import torch.nn as nn
    from user_objects import model, opt, X, Y

    torch.manual_seed(1234)                        # the import reseeds every generator...
    np.random.seed(5)
    random.seed(7)
    os.chdir(os.path.dirname(os.path.abspath(__file__)) + "/elsewhere")   # ...moves the cwd...
    sys.path.append("/nowhere")                    # ...and edits sys.path and sys.argv
    sys.argv.append("--from-the-model-file")

    def build_optimizer(params):
        return opt                                 # the user's own optimizer object

    def sample_batch():
        return X, Y

    loss_fn = nn.CrossEntropyLoss()
""")


def _tensor(t):
    return None if t is None else t.detach().clone()


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and torch.equal(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(a, b)
    return a == b


def _hooks(module: torch.nn.Module) -> dict:
    names = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks",
             "_state_dict_hooks", "_load_state_dict_pre_hooks")
    out = {f"{n}:{name}": list(getattr(m, name, {}).keys()) for n, m in module.named_modules() for name in names}
    from torch.nn.modules import module as mod

    for name in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks"):
        out[name] = list(getattr(mod, name, {}).keys())
    return out


def snapshot(model: torch.nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Everything the contract says a run leaves alone, copied."""
    state = opt.state_dict()
    return {
        "params": {n: (_tensor(p), p.requires_grad, _tensor(p.grad)) for n, p in model.named_parameters()},
        "param_ids": [id(p) for p in model.parameters()],
        "buffers": {n: _tensor(b) for n, b in model.named_buffers()},
        "training": {n: m.training for n, m in model.named_modules()},
        "hooks": _hooks(model),
        "opt_state": {k: {kk: _tensor(vv) if isinstance(vv, torch.Tensor) else vv for kk, vv in v.items()}
                      for k, v in state["state"].items()},
        "opt_groups": [{k: v for k, v in g.items()} for g in state["param_groups"]],
        "opt_params": [id(p) for g in opt.param_groups for p in g["params"]],
        "torch_rng": torch.get_rng_state(),
        "initial_seed": torch.initial_seed(),
        "numpy_rng": np.random.get_state(),
        "python_rng": random.getstate(),
        "dtype": torch.get_default_dtype(),
        "grad_mode": torch.is_grad_enabled(),
        "autocast": (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")),
        "anomaly": (torch.is_anomaly_enabled(), torch.is_anomaly_check_nan_enabled()),
        "threads": torch.get_num_threads(),
        "cwd": os.getcwd(),
        "sys_path": list(sys.path),
        "sys_argv": list(sys.argv),
    }


def assert_unchanged(before: dict, after: dict) -> None:
    changed = [k for k in before if not _same(before[k], after[k])]
    assert not changed, f"changed by the run: {changed}"


@pytest.fixture
def user(tmp_path, monkeypatch):
    """The user's objects (imported from the sibling module, as the model file does) and the file."""
    (tmp_path / "user_objects.py").write_text(USER_MODULE)
    (tmp_path / "elsewhere").mkdir()
    path = tmp_path / "model.py"
    path.write_text(MODEL_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "user_objects", raising=False)
    import user_objects

    torch.manual_seed(99)  # the caller's own generator state, which must survive
    np.random.seed(3)
    random.seed(11)
    yield user_objects, path
    sys.modules.pop("user_objects", None)


def test_api_on_the_file_changes_nothing(user):
    objects, path = user
    before = snapshot(objects.model, objects.opt)
    report = nndiag.check(path, settings=SMALL, threads=1)
    results = {r.probe: r.status.value for r in report.subjects[0].results}
    assert len(results) >= 10 and "error" not in results.values(), report.subjects[0]
    assert objects.CALLS, "the probes never ran the user's model? (its hook is on the copies too)"
    assert_unchanged(before, snapshot(objects.model, objects.opt))


def test_cli_on_the_file_changes_nothing(user, tmp_path):
    objects, path = user
    before = snapshot(objects.model, objects.opt)
    result = CliRunner().invoke(main, ["check", str(path), *SMALL_ARGS, "--json", str(tmp_path / "r.json")])
    assert result.exit_code in (0, 1), result.output
    assert "ERROR" not in result.output, result.output
    assert_unchanged(before, snapshot(objects.model, objects.opt))


@pytest.mark.parametrize("probe", ["params", "data", "nan", "gradients", "dead-neurons", "saturation",
                                   "loss-setup", "overfit", "lr-range", "updates", "batch-independence"])
def test_each_probe_changes_nothing(user, probe):
    objects, path = user
    before = snapshot(objects.model, objects.opt)
    result = nndiag.check_probe(probe, path, settings=SMALL, threads=1)
    assert result.status.value != "error", result.summary
    assert_unchanged(before, snapshot(objects.model, objects.opt))


@pytest.mark.parametrize("autocast", ["bf16", "fp16"])
def test_a_check_under_autocast_changes_nothing(user, autocast):
    """--autocast: the forwards run under autocast and fp16 steps with a GradScaler, all on
    nndiag's copies; the user's model (float32 weights), optimizer and the autocast state are
    as before."""
    objects, path = user
    before = snapshot(objects.model, objects.opt)
    report = nndiag.check(path, settings=SMALL, threads=1, autocast=autocast)
    results = {r.probe: r.status.value for r in report.subjects[0].results}
    assert len(results) >= 10 and "error" not in results.values(), report.subjects[0]
    assert_unchanged(before, snapshot(objects.model, objects.opt))


def test_api_on_objects_changes_nothing(user):
    objects, _ = user
    before = snapshot(objects.model, objects.opt)
    report = nndiag.check(model=objects.model, batch=(objects.X, objects.Y),
                          loss_fn=torch.nn.CrossEntropyLoss(), optimizer=lambda params: objects.opt,
                          settings=SMALL, threads=1)
    assert "error" not in {r.status.value for r in report.subjects[0].results}
    assert_unchanged(before, snapshot(objects.model, objects.opt))


def test_snapshot_sees_a_change(user):
    """The comparison can fail: an lr change, a cleared .grad, a reseed and a chdir are all seen."""
    objects, path = user
    for change, key in ((lambda: objects.opt.param_groups[0].update(lr=10.0), "opt_groups"),
                        (lambda: objects.model.fc2.weight.grad.zero_(), "params"),
                        (lambda: torch.manual_seed(1), "torch_rng"),
                        (lambda: objects.model.drop.train(), "training"),
                        (lambda: os.chdir(path.parent / "elsewhere"), "cwd")):
        before = snapshot(objects.model, objects.opt)
        cwd = os.getcwd()
        change()
        after = snapshot(objects.model, objects.opt)
        os.chdir(cwd)
        assert not _same(before[key], after[key]), key
