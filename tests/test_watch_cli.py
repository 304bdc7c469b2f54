"""``nndiag watch FILE``: a model file's own setup trained under the watch, from the command line;
and healthy reference runs that must not warn."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from nndiag.cli import main

MODEL = textwrap.dedent('''
    import torch, torch.nn as nn
    from sklearn.datasets import load_digits

    _d = load_digits()
    _x = torch.tensor(_d.data, dtype=torch.float32) / 16.0
    _y = torch.tensor(_d.target)
    ARM_AT = {arm_at}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(64, 64), nn.Linear(64, 10)
            self.calls = 0

        def forward(self, x):
            self.calls += 1
            h = torch.relu(self.fc1(x))
            if ARM_AT >= 0 and self.calls > ARM_AT:
                h = torch.sqrt(h - 10.0)  # NaN from finite inputs
            return self.fc2(h)

    def build_model():
        return Net()

    def _batches():
        g = torch.Generator().manual_seed(0)
        perm = torch.randperm(len(_x), generator=g)
        for i in range(0, len(_x) - 63, 64):
            yield _x[perm[i:i + 64]], _y[perm[i:i + 64]]

    def dataloader():
        return _batches()

    loss_fn = nn.CrossEntropyLoss()
''')


def _file(tmp_path, arm_at=-1):
    path = tmp_path / "net.py"
    path.write_text(MODEL.format(arm_at=arm_at))
    return str(path)


def test_watch_command_trains_the_file_and_writes_reports(tmp_path):
    out = tmp_path / "w.json"
    html = tmp_path / "w.html"
    r = CliRunner().invoke(main, ["watch", _file(tmp_path), "--steps", "60", "--set", "log_every=20",
                                  "--json", str(out), "--html", str(html)])
    assert r.exit_code == 0, r.output
    assert "step 20: loss" in r.output and "watch.gradients" in r.output and "PASS" in r.output
    d = json.loads(out.read_text())
    assert d["status"] == "pass" and len(d["results"]) == 8
    assert html.read_text().count("<svg") >= 4


def test_watch_command_reports_a_nan_live_stops_and_exits_1(tmp_path):
    r = CliRunner().invoke(main, ["watch", _file(tmp_path, arm_at=25), "--steps", "200"])
    assert r.exit_code == 1, r.output
    assert "step 25: FAIL [watch.nan]" in r.output and "torch.sqrt" in r.output
    assert "stopped at step 25" in r.output


@pytest.mark.parametrize("args, words", [
    (["--steps", "5", "--set", "log_every"], "KEY=VALUE"),
    (["--steps", "5", "--policy", "nan=explode"], "report, warn or stop"),
    ([], "--steps"),
])
def test_watch_command_usage_errors_exit_2_with_a_hint(tmp_path, args, words):
    r = CliRunner().invoke(main, ["watch", _file(tmp_path), *args])
    assert r.exit_code == 2 and words in r.output and "Traceback" not in r.output


def test_watch_command_missing_file_exits_2(tmp_path):
    r = CliRunner().invoke(main, ["watch", str(tmp_path / "nope.py"), "--steps", "5"])
    assert r.exit_code == 2 and "No such model file" in r.output


def test_reference_mlp_on_mnist_healthy_for_an_epoch_and_more_gives_no_warn(mnist_available):
    from nndiag.loading import load_model_file
    from nndiag.watch.driver import run_subject

    w = run_subject(load_model_file("reference_models/mlp.py"), steps=300, on_event=lambda e: None)
    rep = w.report.subjects[0]
    assert w.timeline.steps == 300
    assert all(r.status.value == "pass" for r in rep.results), [(r.probe, r.summary) for r in rep.results]


def test_reference_train_with_watch_writes_the_watch_report(mnist_available, tmp_path, capsys):
    from reference_models import train

    assert train.main(["mlp", "--epochs", "1", "--limit", "640", "--watch", "--quiet",
                       "--out", str(tmp_path)]) == 0
    d = json.loads((tmp_path / "watch.json").read_text())
    assert d["status"] == "pass" and d["results"][0]["metrics"]["steps"] == 10
    assert "watch.units" in capsys.readouterr().out and (tmp_path / "watch.html").stat().st_size > 10_000


def test_the_driver_hands_progress_the_loss_unread(tmp_path):
    """The driver never reads the loss itself (on CUDA each read waits for the device): progress
    gets the step's detached tensor and reads only the steps it prints."""
    import torch

    from nndiag.loading import load_model_file
    from nndiag.watch.driver import run_subject

    seen = []
    run_subject(load_model_file(_file(tmp_path)), steps=6, progress=lambda s, loss: seen.append((s, loss)),
                on_event=lambda e: None)
    assert [s for s, _ in seen] == list(range(1, 7))
    assert all(isinstance(loss, torch.Tensor) and not loss.requires_grad for _, loss in seen)


def test_watch_command_without_a_gpu_says_so_for_device_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = CliRunner().invoke(main, ["watch", _file(tmp_path), "--steps", "5", "--device", "cuda"])
    assert r.exit_code == 2 and "no CUDA GPU" in r.output and "Traceback" not in r.output
