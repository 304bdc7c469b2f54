"""Findings carry the user's source line: the module's own class, the line that creates a torch
layer in a user-written parent (or its base class), else the model factory."""

import textwrap

import pytest
import torch
import torch.nn as nn

from nndiag.loading import load_model_file
from nndiag.report import Finding, ProbeResult, Status, SubjectReport
from nndiag.source_lines import locate_findings, module_name, source_of

MODEL_FILE = textwrap.dedent('''\
    import torch
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x)


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return self.head(self.block(x))


    class Deeper(Net):
        pass


    def build_model():
        return Deeper()


    def build_plain():
        return nn.Sequential(nn.Linear(4, 4), nn.ReLU())


    def sample_batch():
        return torch.randn(8, 4), torch.randint(0, 2, (8,))


    loss_fn = nn.CrossEntropyLoss()
    ''')


@pytest.fixture
def subject(tmp_path):
    path = tmp_path / "net.py"
    path.write_text(MODEL_FILE)
    return load_model_file(str(path)), str(path)


def test_module_names():
    assert module_name("fc1 (Linear) -> relu") == "fc1"
    assert module_name("<model> (LogSoftmaxByHand)") == ""
    assert module_name("block.lin.weight") == "block.lin.weight"


def test_each_rule(subject):
    subj, path = subject
    model = subj.model_factory()
    assert source_of(model, "") == (path, 24)  # class Deeper (user class)
    assert source_of(model, "block") == (path, 5)  # class Block
    assert source_of(model, "block.lin.weight") == (path, 8)  # self.lin = ... in Block
    assert source_of(model, "head") == (path, 18)  # self.head = ... in the base class Net
    plain = nn.Sequential(nn.Linear(4, 4))
    factory_line = MODEL_FILE.splitlines().index("def build_plain():") + 1
    assert source_of(plain, "0", _fn(path, "build_plain")) == (path, factory_line)  # the factory
    assert source_of(plain, "0") is None  # torch all the way and no factory: no line


def _fn(path, name):
    import importlib.util

    spec = importlib.util.spec_from_file_location("net_for_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def test_locate_findings_sets_file_and_line_and_keeps_the_rng(subject, monkeypatch, tmp_path):
    subj, path = subject
    monkeypatch.chdir(tmp_path)
    report = SubjectReport("net.py", (ProbeResult("gradients", Status.FAIL, "x", (
        Finding(Status.FAIL, "no gradient", "head.weight"), Finding(Status.FAIL, "odd", "")),),))
    torch.manual_seed(5)
    before = torch.get_rng_state()
    located = locate_findings(report, subj)
    assert torch.equal(torch.get_rng_state(), before)
    first, second = located.results[0].findings
    assert (first.file, first.line) == ("net.py", 18)  # relative to the working folder
    assert second.file == "" and second.line is None


def test_a_factory_that_cannot_build_gives_no_line(subject):
    subj, _ = subject

    class Broken:
        user_model = None

        @staticmethod
        def model_factory():
            raise RuntimeError("needs a GPU")

    report = SubjectReport("x", (ProbeResult("p", Status.FAIL, "x", (Finding(Status.FAIL, "m", "fc1"),)),))
    assert locate_findings(report, Broken()) == report
