"""The runner: the user's model, optimizer and random generators are left bit for bit as found;
results are repeatable for a seed and independent of probe order."""

from __future__ import annotations

import random
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn

import nndiag
from nndiag.loading import load_model_file
from nndiag.runner import RunOptions, check_subject

CORE = ["params", "data", "nan", "gradients"]


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


MODEL_FILE = textwrap.dedent("""
    import torch
    import torch.nn as nn

    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    _g = torch.Generator().manual_seed(1)
    train_loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(64, 6, generator=_g), torch.randint(0, 3, (64,), generator=_g)),
        batch_size=16, shuffle=True)
    loss_fn = nn.CrossEntropyLoss()

    def build_optimizer(params):
        return torch.optim.SGD(params, lr=0.1, momentum=0.9)
""")


def test_module_level_model_optimizer_and_rng_untouched(tmp_path):
    f = tmp_path / "model_file.py"
    f.write_text(MODEL_FILE)
    subject = load_model_file(f)
    user_model = subject.user_model
    module = __import__("sys").modules  # the file's own optimizer lives on the loaded module object
    user_model.train()  # a training-mode model must stay in training mode (and BN stats unchanged)
    before = _state(user_model)
    flags = [m.training for m in user_model.modules()]
    rng_before = (torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate())
    grads_before = [p.grad for p in user_model.parameters()]

    report = check_subject(subject, RunOptions())  # every registered probe

    assert report.results, "no probe ran"
    assert _same(before, _state(user_model)), "the user's model changed"
    assert flags == [m.training for m in user_model.modules()]
    assert [p.grad for p in user_model.parameters()] == grads_before == [None] * len(grads_before)
    assert torch.equal(rng_before[0], torch.get_rng_state())
    assert np.array_equal(rng_before[1], np.random.get_state()[1])
    assert rng_before[2] == random.getstate()
    del module


def test_user_optimizer_state_untouched_with_objects():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.randn(8, 4), torch.randint(0, 2, (8,))
    nn.CrossEntropyLoss()(model(x), y).backward()
    opt.step()  # the optimizer now has state
    opt_before = {k: {n: v.clone() if torch.is_tensor(v) else v for n, v in s.items()}
                  for k, s in opt.state_dict()["state"].items()}
    model_before = _state(model)
    nndiag.check(model=model, batch=(x, y), loss_fn=nn.CrossEntropyLoss(),
                 optimizer=lambda p: torch.optim.Adam(p, lr=1e-3), probes=CORE)
    after = opt.state_dict()["state"]
    assert _same(model_before, _state(model))
    for k, s in opt_before.items():
        for n, v in s.items():
            assert torch.equal(v, after[k][n]) if torch.is_tensor(v) else v == after[k][n]


def _outcome(report):
    return [(r.probe, r.status, dict(r.metrics)) for _, r in report.all_results()]


def _mlp():
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.3), nn.Linear(32, 4))


def test_same_seed_same_results_and_order_independent():
    batch = (torch.randn(32, 10), torch.randint(0, 4, (32,)))
    kw = dict(model=_mlp, batch=batch, loss_fn=nn.CrossEntropyLoss())
    a = nndiag.check(probes=CORE, seed=3, **kw)
    b = nndiag.check(probes=CORE, seed=3, **kw)
    only_grad = nndiag.check(probes=["gradients"], seed=3, **kw)
    assert _outcome(a) == _outcome(b)
    grads_a = a.subjects[0].result("gradients")
    assert grads_a.data["layers"] == only_grad.subjects[0].result("gradients").data["layers"]


def test_different_seed_different_model_init():
    batch = (torch.randn(32, 10), torch.randint(0, 4, (32,)))
    kw = dict(model=_mlp, batch=batch, loss_fn=nn.CrossEntropyLoss(), probes=["gradients"])
    a = nndiag.check(seed=0, **kw).subjects[0].result("gradients").metrics["total_grad_norm"]
    b = nndiag.check(seed=1, **kw).subjects[0].result("gradients").metrics["total_grad_norm"]
    assert a != b


def test_shared_training_pass_runs_once(monkeypatch):
    from nndiag import training_trace

    calls = []
    real = training_trace.run_training_trace
    monkeypatch.setattr(training_trace, "run_training_trace",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    batch = (torch.randn(16, 10), torch.randint(0, 4, (16,)))
    nndiag.check(model=_mlp, batch=batch, loss_fn=nn.CrossEntropyLoss(), probes=["nan", "gradients"])
    assert len(calls) == 1


def test_file_config_probes_skip_and_settings(tmp_path):
    f = tmp_path / "m.py"
    f.write_text(textwrap.dedent("""
        import torch, torch.nn as nn
        def build_model(): return nn.Linear(3, 2)
        def sample_batch(): return torch.randn(4, 3), torch.randint(0, 2, (4,))
        loss_fn = nn.CrossEntropyLoss()
        nndiag_config = {"probes": ["params", "nan"], "skip": ["params"], "nan": {"steps": 3, "watch_steps": 1},
                         "params": {"expected_total": 8}}
    """))
    report = nndiag.check(f)
    results = report.subjects[0].results
    assert [r.probe for r in results] == ["nan"]
    assert results[0].metrics["steps_run"] == 3
    # the command line wins over the file
    report = nndiag.check(f, probes=["params"])
    assert report.subjects[0].result("params").status is nndiag.Status.PASS


def test_weights_are_loaded(tmp_path):
    model = nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(0.5)
        model.bias.zero_()
    torch.save(model.state_dict(), tmp_path / "w.pt")
    f = tmp_path / "m.py"
    f.write_text("import torch, torch.nn as nn\ndef build_model(): return nn.Linear(3, 2)\n"
                 "def sample_batch(): return torch.ones(4, 3), torch.randint(0, 2, (4,))\n"
                 "loss_fn = nn.CrossEntropyLoss()\n")
    subject = load_model_file(f, weights=tmp_path / "w.pt")
    from nndiag.workbench import Workbench

    fresh = Workbench(subject).fresh_model()
    assert torch.equal(fresh.weight, torch.full((2, 3), 0.5))


@pytest.mark.parametrize("status,fail_on,code", [("warn", "fail", 0), ("warn", "warn", 1), ("fail", "fail", 1),
                                                 ("pass", "warn", 0), ("error", "fail", 1)])
def test_exit_codes(status, fail_on, code):
    from nndiag.report import ProbeResult, Report, Status, SubjectReport

    results = (ProbeResult("params", Status.PASS, "ok"), ProbeResult("x", Status(status), "s"))
    assert Report((SubjectReport("s", results),)).exit_code(fail_on) == code
    all_error = (ProbeResult("a", Status.ERROR, "e"), ProbeResult("b", Status.ERROR, "e"))
    assert Report((SubjectReport("s", all_error),)).exit_code(fail_on) == 2


def _write(tmp_path, config: str):
    f = tmp_path / "cfg.py"
    f.write_text("import torch, torch.nn as nn\ndef build_model(): return nn.Linear(3, 2)\n"
                 "def sample_batch(): return torch.randn(8, 3), torch.randint(0, 2, (8,))\n"
                 f"loss_fn = nn.CrossEntropyLoss()\nnndiag_config = {config}\n")
    return f


def test_file_seed_is_used_unless_the_caller_gives_one(tmp_path):
    def norm(report):
        return report.subjects[0].result("gradients").metrics["total_grad_norm"]

    (tmp_path / "a").mkdir()
    f0 = _write(tmp_path / "a", "{}")
    f5 = _write(tmp_path, '{"seed": 5}')
    assert norm(nndiag.check(f5, probes=["gradients"])) == norm(nndiag.check(f0, probes=["gradients"], seed=5))
    assert norm(nndiag.check(f5, probes=["gradients"], seed=0)) == norm(nndiag.check(f0, probes=["gradients"]))


def test_misspelled_config_key_is_an_error_naming_the_valid_keys(tmp_path):
    from nndiag.errors import UsageError

    with pytest.raises(UsageError) as exc:
        nndiag.check(_write(tmp_path, '{"skipp": ["nan"]}'))
    assert "'skipp'" in str(exc.value) and "probe id" in str(exc.value)


def test_bad_config_in_one_file_does_not_stop_the_others(tmp_path):
    from nndiag.runner import RunOptions, check_paths

    (tmp_path / "a").mkdir()
    good = _write(tmp_path / "a", "{}")
    bad = _write(tmp_path, '{"overfitt": {}}')
    report = check_paths([bad, good], RunOptions(probes=["params"]))
    assert "overfitt" in report.subjects[0].load_error
    assert report.subjects[1].status is nndiag.Status.PASS
    assert report.exit_code() == 1


def test_generator_loader_keeps_every_batch():
    def batches():
        for _ in range(3):
            yield torch.randn(64, 4), torch.randint(0, 3, (64,))

    report = nndiag.check(model=lambda: nn.Linear(4, 3), batches=batches(), loss_fn=nn.CrossEntropyLoss(),
                          probes=["nan", "data"], data={"samples": 192})
    assert report.subjects[0].result("data").metrics["samples"] == 192


def test_run_finished_is_called_for_objects():
    import types

    seen = []
    mod = types.ModuleType("listener3")
    mod.nndiag_run_finished = nndiag.hookimpl(lambda report: seen.append(len(report.subjects)))
    nndiag.check(model=lambda: nn.Linear(4, 3), batch=(torch.randn(8, 4), torch.randint(0, 3, (8,))),
                 loss_fn=nn.CrossEntropyLoss(), probes=["params"], plugins=[mod])
    assert seen == [1]


def test_report_json_survives_odd_values_in_probe_data():
    import json
    import math

    from nndiag.report import ProbeResult, Report, Status, SubjectReport

    data = {"a_set": {3, 1}, "tensor": torch.tensor([1.0, 2.0]), "nan": float("nan"), "obj": object}
    r = ProbeResult("x", Status.PASS, "ok", metrics={"inf": math.inf}, data=data)
    out = json.loads(json.dumps(Report((SubjectReport("s", (r,)),)).to_dict(), allow_nan=False))
    (res,) = out["results"]
    assert res["data"]["a_set"] == [1, 3] and res["data"]["tensor"] == [1.0, 2.0]
    assert res["data"]["nan"] == "nan" and res["metrics"]["inf"] == "inf"


def test_threads_option_applies_during_the_run_and_is_restored():
    import types

    seen = []
    mod = types.ModuleType("thread_listener")
    mod.nndiag_probe_finished = nndiag.hookimpl(lambda subject, result: seen.append(torch.get_num_threads()))
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    nndiag.check(model=lambda: nn.Linear(4, 3), batch=(torch.randn(8, 4), torch.randint(0, 3, (8,))),
                 loss_fn=nn.CrossEntropyLoss(), probes=["params"], plugins=[mod], threads=target)
    assert seen == [target] and torch.get_num_threads() == before


def test_check_probe_returns_that_probes_result_and_raises_on_a_bad_file(tmp_path):
    from nndiag.errors import ModelFileError

    r = nndiag.check_probe("params", model=lambda: nn.Linear(4, 3),
                           batch=(torch.randn(8, 4), torch.randint(0, 3, (8,))), loss_fn=nn.CrossEntropyLoss())
    assert r.probe == "params" and r.metrics["total"] == 15
    with pytest.raises(ModelFileError, match="No such model file"):
        nndiag.check_probe("params", tmp_path / "missing.py")
