"""The bad-input catalogue (issue 14, contract §4): realistic mistakes a user makes, each with the
exit status it must end in and the words its message must contain.

Every case runs ``nndiag check`` on a small model file. For each one the test requires: the stated
exit status; every expected word in the output (case-insensitive); no traceback (``--traceback``
is never given here); and the first expected phrase at most once in the terminal output, so a
file-level problem is reported once, not once per probe. Cases marked ``process=True`` run the real
command in a child process (they end or kill the process, which an in-process runner cannot show).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from nndiag.cli import main

H = "import torch\nimport torch.nn as nn\n"
MODEL = "def build_model():\n    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))\n"
DATA = ("def sample_batch():\n    g = torch.Generator().manual_seed(0)\n"
        "    return torch.randn(16, 4, generator=g), torch.randint(0, 3, (16,), generator=g)\n")
LOSS = "loss_fn = nn.CrossEntropyLoss()\n"
GOOD = H + MODEL + DATA + LOSS
NET = textwrap.dedent("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(4, 8)
            self.fc2 = nn.Linear(8, 3)
        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))
""")
FAST = ("--probe", "params", "--probe", "data", "--probe", "nan", "--probe", "gradients")
TRAIN = ("--probe", "updates", "--probe", "overfit", "--set", "overfit.steps=5", "--probe", "lr-range",
         "--set", "lr-range.num_it=6")


@dataclass
class Case:
    """One mistake: the model file's text, extra arguments, the exit status and expected words."""

    body: str | None  # the model file; None: no file is written (the path is given in args)
    code: int | tuple[int, ...]
    words: tuple[str, ...]
    args: tuple[str, ...] = FAST
    process: bool = False  # run the real command in a child process
    name: str = "model.py"
    setup: str = ""  # extra files: "name=text" blocks separated by "\n---\n"
    once: bool = True  # the first word appears at most once in the terminal output
    raw: bytes | None = None  # the model file's bytes, when they are not UTF-8 text
    check: str = ""  # name of an extra check in EXTRA_CHECKS


def _file(body: str) -> str:
    return textwrap.dedent(body)


C: dict[str, Case] = {}

# ---- bad files -----------------------------------------------------------------------------------
C["missing file"] = Case(None, 2, ("No such model file", "check the path"), args=("nope.py",))
C["directory"] = Case(None, 2, ("is a folder", ".py file"), args=("adir",), setup="adir/=")
C["not a .py file"] = Case("hello", 2, ("not a Python file",), name="model.txt")
C["syntax error"] = Case(H + "def build_model(:\n", 2, ("syntax error at line 3", "py_compile"))
C["indentation error"] = Case(H + "def build_model():\nreturn 1\n", 2, ("syntax error at line 4",))
C["binary .py"] = Case(None, 2, ("not a text file",), raw=b"\x89PNG\r\n\x1a\n\x00\xff\xfe\x00")
C["utf-8 BOM"] = Case(None, 0, ("params",), args=("--probe", "params"), raw=b"\xef\xbb\xbf" + GOOD.encode())
C["latin-1 with coding line"] = Case(None, 0, ("params",), args=("--probe", "params"),
                                     raw=b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + GOOD.encode())
C["empty file"] = Case("", 2, ("neither build_model() nor model", "def build_model"))
C["only comments"] = Case("# my model\n", 2, ("neither build_model() nor model",))
C["import error"] = Case(H + "import not_a_real_module_xyz\n" + MODEL + DATA + LOSS, 2,
                         ("No module named", "pip install not_a_real_module_xyz"))
C["import of missing name"] = Case(H + "from torch.nn import NotALayer\n" + MODEL + DATA + LOSS, 2,
                                   ("ImportError", "NotALayer"))
C["import-time ZeroDivisionError"] = Case(H + "x = 1 / 0\n", 2, ("raised ZeroDivisionError", "--traceback"))
C["import-time custom exception"] = Case(H + "raise RuntimeError('no GPU on this box')\n", 2,
                                         ("no GPU on this box", "Importing"))
C["sys.exit(3) at import"] = Case(H + "import sys\nsys.exit(3)\n", 2, ("sys.exit(3)", "__main__"))
C["sys.exit(0) at import"] = Case(H + "import sys\nsys.exit(0)\n", 2, ("sys.exit(0)", "__main__"))
C["raise SystemExit at import"] = Case(H + "raise SystemExit\n", 2, ("sys.exit(None)",))
C["os._exit(0) at import, in process"] = Case(H + "import os\nos._exit(0)\n", 2, ("os._exit(0)", "__main__"))
C["os._exit(0) at import"] = Case(H + "import os\nos._exit(0)\n", 2, ("os._exit(0)",), process=True)
C["posix._exit(0) at import"] = Case(H + "import posix\nposix._exit(0)\n", 2, ("_exit(0)",), process=True)
C["SIGTERM at import"] = Case(H + "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n", 2,
                              ("SIGTERM", "ended the process"), process=True)
C["SIGKILL at import"] = Case(H + "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", 2,
                              ("SIGKILL", "ended the process"), process=True)
C["segfault at import"] = Case(H + "import ctypes\nctypes.string_at(0)\n", 2,
                               ("SIGSEGV", "crash"), process=True)
C["abort while shutting down, after the report"] = Case(
    GOOD + "import atexit, os\natexit.register(os.abort)\n", 0,
    ("while shutting down, after the report", "the check's own (0)"), process=True)
C["libc exit(0) at import"] = Case(H + "import ctypes\nctypes.CDLL(None).exit(0)\n", 2,
                                   ("ended the process", "exit status 0"), process=True)
C["os._exit(0) in forward"] = Case(H + DATA + LOSS + textwrap.dedent("""
    import os
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
        def forward(self, x):
            os._exit(0)
    def build_model():
        return Net()
    """), 2, ("os._exit(0)",))
C["sys.exit(0) in forward"] = Case(H + DATA + LOSS + textwrap.dedent("""
    import sys
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
        def forward(self, x):
            sys.exit(0)
    def build_model():
        return Net()
    """), 2, ("sys.exit(0)",))
C["chdir at import"] = Case("import os\nos.chdir(os.path.dirname(os.path.abspath(__file__)) + '/sub')\n" + GOOD,
                            0, ("params",), args=("--probe", "params", "--json", "report.json"),
                            setup="m/sub/=", name="m/model.py", check="json_in_cwd")
C["sys.path and argv changed at import"] = Case(
    "import sys\nsys.path.insert(0, '/nowhere')\nsys.argv[:] = ['x']\n" + GOOD, 0, ("params",),
    args=("--probe", "params"))
C["sibling import works"] = Case("from helper import build_model\n" + H + DATA + LOSS, 0, ("params",),
                                 args=("--probe", "params"), setup="helper.py=" + H + MODEL)
C["sibling module missing"] = Case("from helperx import build_model\n" + H + DATA + LOSS, 2,
                                   ("No module named 'helperx'",))
C["long import-time message kept whole"] = Case(
    H + "raise FileNotFoundError('The dataset was not found under /data/mnist: download it with "
    "python get_data.py, or set NNDIAG_DATA_DIR to the folder where the offline copy lives; see the "
    "README of this project for where the offline copy comes from and how large it is, and keep "
    "going until this sentence is longer than three hundred characters, ending in END-OF-HINT')\n",
    2, ("END-OF-HINT",))

# ---- bad model functions -----------------------------------------------------------------------
C["model is the class"] = Case(H + NET + "model = Net\n" + DATA + LOSS, 2, ("the class Net", "model = Net()"))
C["build_model is an instance"] = Case(H + NET + "build_model = Net()\n" + DATA + LOSS, 2,
                                       ("an instance", "def build_model"))
C["build_model is the class (fine)"] = Case(H + NET + "build_model = Net\n" + DATA + LOSS, 0, ("params",),
                                            args=("--probe", "params"))
C["build_model returns None"] = Case(H + NET + "def build_model():\n    Net()\n" + DATA + LOSS, 2,
                                     ("returned a NoneType", "return"))
C["build_model returns a tuple"] = Case(
    H + NET + "def build_model():\n    m = Net()\n    return m, torch.optim.SGD(m.parameters(), 0.1)\n" + DATA + LOSS,
    2, ("returned a tuple", "build_optimizer"))
C["build_model raises"] = Case(H + "def build_model():\n    raise ValueError('bad width')\n" + DATA + LOSS, 2,
                               ("bad width", "the file's model"))
C["build_model needs an argument"] = Case(H + NET + "def build_model(n):\n    return Net()\n" + DATA + LOSS, 2,
                                          ("missing 1 required positional argument", "build_model()"))
C["model is a number"] = Case(H + "model = 3\n" + DATA + LOSS, 2, ("not a torch.nn.Module",))
C["model on meta device"] = Case(H + "model = nn.Linear(4, 3, device='meta')\n" + DATA + LOSS, 2,
                                 ("meta", "to_empty"))
C["batch on meta device"] = Case(H + MODEL + LOSS + "def sample_batch():\n    return torch.randn(16, 4, "
                                 "device='meta'), torch.randint(0, 3, (16,))\n", 2, ("meta",))
C["lazy modules"] = Case(H + "def build_model():\n    return nn.Sequential(nn.LazyLinear(8), nn.ReLU(), "
                         "nn.LazyLinear(3))\n" + DATA + LOSS, (0, 1), ("gradients",),
                         args=FAST + TRAIN, check="no_error", once=False)
C["TorchScript module"] = Case(H + NET + "model = torch.jit.script(Net())\n" + DATA + LOSS, (0, 1),
                               ("gradients",), args=FAST + TRAIN, check="no_error", once=False)
C["no parameters"] = Case(H + "def build_model():\n    return nn.Sequential(nn.ReLU())\n" + DATA + LOSS, 2,
                          ("no parameters at all", "nn.ModuleList"))
C["layers in a plain list"] = Case(H + DATA + LOSS + textwrap.dedent("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(4, 3)]
        def forward(self, x):
            return self.layers[0](x)
    def build_model():
        return Net()
    """), 2, ("no parameters at all", "nn.ModuleList"))
C["all frozen"] = Case(H + "def build_model():\n    m = nn.Linear(4, 3)\n    m.requires_grad_(False)\n"
                       "    return m\n" + DATA + LOSS, 1, ("frozen",), once=False, check="frozen_named")
C["forward raises"] = Case(H + DATA + LOSS + textwrap.dedent("""
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
        def forward(self, x):
            raise ValueError("boom in forward")
    def build_model():
        return Bad()
    """), 2, ("boom in forward", "forward raised ValueError"))
C["forward returns None"] = Case(H + DATA + LOSS + textwrap.dedent("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
        def forward(self, x):
            self.fc(x)
    def build_model():
        return Net()
    """), 2, ("NoneType",))
C["float64 model, float32 data"] = Case(H + "def build_model():\n    return nn.Linear(4, 3).double()\n"
                                        + DATA + LOSS, 2, ("must have the same dtype", "x.double()"))
C["module-level model and optimizer"] = Case(H + NET + "model = Net()\nopt = torch.optim.SGD(model.parameters(), "
                                             "lr=0.1)\ndef build_optimizer(params):\n    return opt\n" + DATA + LOSS,
                                             (0, 1), ("updates",), args=FAST + TRAIN, check="no_error", once=False)

# ---- bad data ------------------------------------------------------------------------------------
C["sample_batch is a tuple"] = Case(H + MODEL + LOSS + "sample_batch = (torch.randn(16, 4), torch.randint(0, 3, (16,)))\n",
                                    2, ("is a tuple, not a function", "def sample_batch"))
C["Dataset for train_loader"] = Case(H + MODEL + LOSS + "from torch.utils.data import TensorDataset\n"
                                     "train_loader = TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))\n",
                                     2, ("a Dataset of single samples", "DataLoader(", "batch_size"))
C["dataloader() returns a Dataset"] = Case(
    H + MODEL + LOSS + "from torch.utils.data import TensorDataset\ndef dataloader():\n"
    "    return TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,)))\n", 2, ("a Dataset of single samples", "DataLoader("))
C["dataloader is a DataLoader"] = Case(
    H + MODEL + LOSS + "from torch.utils.data import TensorDataset, DataLoader\ndataloader = DataLoader("
    "TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,))), batch_size=16)\n", 2,
    ("is a DataLoader, not a function", "train_loader"))
C["train_loader is a function"] = Case(H + MODEL + LOSS + "def train_loader():\n    return [(torch.randn(16, 4), "
                                       "torch.randint(0, 3, (16,)))]\n", 2, ("is a function, not a loader", "dataloader()"))
C["generator loader (fine)"] = Case(H + MODEL + LOSS + "train_loader = ((torch.randn(16, 4), torch.randint(0, 3, (16,)))"
                                    " for _ in range(4))\n", (0, 1), ("params",), check="no_error", once=False)
C["DataLoader with worker processes (fine)"] = Case(
    H + MODEL + LOSS + "from torch.utils.data import TensorDataset, DataLoader\ntrain_loader = DataLoader("
    "TensorDataset(torch.randn(64, 4), torch.randint(0, 3, (64,))), batch_size=16, num_workers=2)\n", (0, 1),
    ("params",), args=("--probe", "params", "--probe", "data", "--probe", "gradients"), check="no_error",
    once=False, process=True)
C["empty loader"] = Case(H + MODEL + LOSS + "train_loader = []\n", 2, ("yielded no batches", "drop_last"))
C["empty batch"] = Case(H + MODEL + LOSS + "def sample_batch():\n    return torch.randn(0, 4), "
                        "torch.randint(0, 3, (0,))\n", 2, ("no samples", "sample_batch()"))
C["wrong input shape"] = Case(H + MODEL + LOSS + "def sample_batch():\n    return torch.randn(16, 5), "
                              "torch.randint(0, 3, (16,))\n", 2, ("inputs of shape (16, 5)", "forward raised"))
C["ints instead of floats"] = Case(H + MODEL + LOSS + "def sample_batch():\n    return torch.randint(0, 9, (16, 4)), "
                                   "torch.randint(0, 3, (16,))\n", 2, ("dtype", ".float()"))
C["numpy arrays"] = Case(H + MODEL + LOSS + "import numpy as np\ndef sample_batch():\n    return "
                         "np.zeros((16, 4), 'float32'), np.zeros(16, 'int64')\n", 2, ("ndarray", "torch.from_numpy"))
C["dict inputs not matching forward"] = Case(H + MODEL + LOSS + "def sample_batch():\n    return {'pixels': "
                                             "torch.randn(16, 4)}, torch.randint(0, 3, (16,))\n", 2,
                                             ("unexpected keyword argument 'pixels'", "keyword arguments"))
C["batch of three"] = Case(H + MODEL + LOSS + "def sample_batch():\n    return torch.randn(16, 4), "
                           "torch.randint(0, 3, (16,)), torch.ones(16)\n", 2, ("length 3", "(inputs, targets)"))
C["batch is a bare tensor"] = Case(H + MODEL + LOSS + "def sample_batch():\n    return torch.randn(16, 4)\n", 2,
                                   ("a Tensor", "(inputs, targets)"))
C["sample_batch raises"] = Case(H + MODEL + LOSS + "def sample_batch():\n    raise OSError('disk gone')\n", 2,
                                ("disk gone", "the file's data"))
C["data folder missing, long message"] = Case(
    H + MODEL + LOSS + "def dataloader():\n    raise FileNotFoundError('No MNIST under ./data. Set NNDIAG_DATA_DIR"
    " to the folder holding mnist/, or pass --data-dir; the shipped sample lives in reference_models/data and "
    "the full set can be fetched with --download where the network allows it, which this message says at the"
    " very end: FINAL-WORDS')\n", 2, ("FINAL-WORDS", "the file's data"))
C["targets out of range"] = Case(H + MODEL + LOSS + "def sample_batch():\n    return torch.randn(16, 4), "
                                 "torch.full((16,), 7)\n", (1, 2), ("Target 7 is out of bounds",), once=True)
C["NaN in inputs (a finding)"] = Case(H + MODEL + LOSS + "def sample_batch():\n    x = torch.randn(16, 4)\n"
                                      "    x[0, 0] = float('nan')\n    return x, torch.randint(0, 3, (16,))\n",
                                      1, ("NaN",), once=False)

# ---- bad losses ----------------------------------------------------------------------------------
C["loss is the class"] = Case(H + MODEL + DATA + "loss_fn = nn.CrossEntropyLoss\n", 2,
                              ("the class CrossEntropyLoss", "nn.CrossEntropyLoss()"))
C["loss not scalar"] = Case(H + MODEL + DATA + "loss_fn = nn.CrossEntropyLoss(reduction='none')\n", 2,
                            ("scalar loss", "reduction='mean'"))
C["loss returns a float"] = Case(H + MODEL + DATA + "def loss_fn(out, y):\n    return nn.functional.cross_entropy"
                                 "(out, y).item()\n", 2, ("not a tensor", "loss.item()"))
C["loss raises"] = Case(H + MODEL + DATA + "def loss_fn(out, y):\n    raise KeyError('labels')\n", 2,
                        ("loss_fn(output, targets) raised KeyError", "the file's loss"))
# torch 2.14 promotes long MSELoss targets, so this one runs; where a loss rejects them, "dtype" is said.
C["MSELoss with long targets"] = Case(H + MODEL + "loss_fn = nn.MSELoss()\ndef sample_batch():\n    return "
                                      "torch.randn(16, 4), torch.randint(0, 3, (16, 3))\n", (0, 1), ("params",),
                                      args=FAST + TRAIN, check="no_error", once=False)
C["BCEWithLogitsLoss with long targets"] = Case(
    H + MODEL + "loss_fn = nn.BCEWithLogitsLoss()\ndef sample_batch():\n    return torch.randn(16, 4), "
    "torch.randint(0, 2, (16, 3))\n", 2, ("can't be cast", "dtype", "y.float()"))
C["loss is a string"] = Case(H + MODEL + DATA + "loss_fn = 'cross_entropy'\n", 2, ("not callable",))
C["loss takes three arguments"] = Case(H + MODEL + DATA + "def loss_fn(out, y, w):\n    return out.sum()\n", 2,
                                       ("missing 1 required positional argument: 'w'", "loss_fn(output, targets)"))
C["criterion alias (fine)"] = Case(H + MODEL + DATA + "criterion = nn.CrossEntropyLoss()\n", 0, ("params",),
                                   args=("--probe", "params", "--probe", "data"))
C["training_step returns a dict"] = Case(H + MODEL + DATA + "def training_step(model, batch):\n    x, y = batch\n"
                                         "    return {'loss': nn.functional.cross_entropy(model(x), y)}\n", 2,
                                         ("returned a dict", "tensor"))
C["train_step returns None"] = Case(H + MODEL + DATA + textwrap.dedent("""
    def train_step(model, optimizer, batch):
        x, y = batch
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    """), 2, ("returned NoneType", "return loss.item()"), args=("--probe", "gradients", "--probe", "updates"))

# ---- bad optimizers ------------------------------------------------------------------------------
C["LBFGS without train_step"] = Case(H + MODEL + DATA + LOSS + "def build_optimizer(params):\n    return "
                                     "torch.optim.LBFGS(params, lr=0.1, max_iter=2)\n", (0, 1), ("updates",),
                                     args=FAST + TRAIN, check="no_error", once=False)
C["build_optimizer returns a list"] = Case(H + MODEL + DATA + LOSS + "def build_optimizer(params):\n    return "
                                           "[torch.optim.SGD(params, lr=0.1)]\n", 2,
                                           ("returned a list", "torch.optim.Optimizer"), args=FAST + TRAIN)
C["build_optimizer raises"] = Case(H + MODEL + DATA + LOSS + "def build_optimizer(params):\n    raise "
                                   "ValueError('lr missing')\n", 2, ("lr missing", "build_optimizer"), args=FAST + TRAIN)
C["build_optimizer takes no argument"] = Case(H + MODEL + DATA + LOSS + "def build_optimizer():\n    return None\n",
                                              2, ("takes 0 positional arguments", "build_optimizer(params)"), args=FAST + TRAIN)
C["build_optimizer is the class (fine)"] = Case(H + MODEL + DATA + LOSS + "build_optimizer = torch.optim.Adam\n",
                                                (0, 1), ("updates",), args=FAST + TRAIN, check="no_error", once=False)
C["build_optimizer returns the class"] = Case(H + MODEL + DATA + LOSS + "def build_optimizer(params):\n    return "
                                              "torch.optim.Adam\n", 2, ("returned the class Adam", "Adam(params"),
                                              args=FAST + TRAIN)
C["build_optimizer not callable"] = Case(H + MODEL + DATA + LOSS + "build_optimizer = 0.1\n", 2,
                                         ("is not a function", "build_optimizer(params)"))

# ---- bad configuration and command line --------------------------------------------------------
C["config unknown key"] = Case(GOOD + "nndiag_config = {'skipp': ['nan']}\n", 2, ("unknown key", "'skipp'"))
C["config seed not a number"] = Case(GOOD + "nndiag_config = {'seed': 'abc'}\n", 2, ("must be an integer", "seed"))
C["config seed a float"] = Case(GOOD + "nndiag_config = {'seed': 1.5}\n", 2, ("must be an integer", "seed"))
C["config negative steps"] = Case(GOOD + "nndiag_config = {'overfit': {'steps': -5}}\n", 2,
                                  ("overfit.steps", "at least 1"), args=("--probe", "overfit"))
C["config steps a string"] = Case(GOOD + "nndiag_config = {'overfit': {'steps': 'many'}}\n", 2,
                                  ("overfit.steps", "int"), args=("--probe", "overfit"))
C["config not a dict"] = Case(GOOD + "nndiag_config = ['nan']\n", 2, ("not a dict",))
C["config unknown probe"] = Case(GOOD + "nndiag_config = {'probes': ['nann']}\n", 2, ("nann",), args=())
C["config bad device"] = Case(GOOD + "nndiag_config = {'device': 'tpu'}\n", 2, ("Unknown device", "cpu"))
C["config probe settings not a dict"] = Case(GOOD + "nndiag_config = {'overfit': 300}\n", 2,
                                             ("must be a dict",), args=("--probe", "overfit"))
C["config missing weights"] = Case(GOOD + "nndiag_config = {'weights': 'nope.pt'}\n", 2, ("nope.pt",))
C["lr-range sweep of 1 step"] = Case(GOOD, 2, ("lr-range.num_it", "at least 2"),
                                     args=("--probe", "lr-range", "--set", "lr-range.num_it=1"))
C["--set negative steps"] = Case(GOOD, 2, ("overfit.steps", "at least 1"), args=("--probe", "overfit", "--set",
                                                                                 "overfit.steps=-3"))
C["--set not a number"] = Case(GOOD, 2, ("not a valid int",), args=("--set", "overfit.steps=abc"))
C["--set bad syntax"] = Case(GOOD, 2, ("PROBE.KEY=VALUE",), args=("--set", "steps=3"))
C["--set unknown probe"] = Case(GOOD, 2, ("Unknown probe id 'overfitt'", "Known probes"), args=("--set", "overfitt.steps=3"))
C["--set unknown setting"] = Case(GOOD, 2, ("Unknown setting stepz", "Valid settings"),
                                  args=("--probe", "nan", "--set", "nan.stepz=3"))
C["--seed beyond 64 bits"] = Case(GOOD, 2, ("--seed", "64"), args=("--seed", str(2**70)))
C["--seed negative beyond 64 bits"] = Case(GOOD, 2, ("--seed",), args=("--seed", str(-2**70)))
C["--json unwritable"] = Case(GOOD, 2, ("cannot write", "--json"), args=("--probe", "params", "--json",
                                                                         "afile/report.json"), setup="afile=x")
C["--html to a folder"] = Case(GOOD, 2, ("is a folder", "--html"), args=("--probe", "params", "--html", "adir"),
                               setup="adir/=")
C["--csv to a folder"] = Case(GOOD, 2, ("is a folder", "--csv"), args=("--probe", "params", "--csv", "adir"),
                              setup="adir/=")
C["unknown probe id"] = Case(GOOD, 2, ("Unknown probe id 'nann'", "Known probes"), args=("--probe", "nann"))
C["unknown --skip id"] = Case(GOOD, 2, ("nann",), args=("--skip", "nann"))
C["every probe skipped"] = Case(GOOD, 2, ("No probe left",), args=("--probe", "nan", "--skip", "nan"))
C["--weights missing"] = Case(GOOD, 2, ("No such weights file",), args=("--probe", "params", "--weights", "w.pt"))
C["--weights not a state_dict"] = Case(GOOD, 2, ("cannot be loaded as a state_dict",),
                                       args=("--probe", "params", "--weights", "w.pt"), setup="w.pt=garbage")
C["--time-limit negative"] = Case(GOOD, 2, ("must be 0 (no limit)", "--time-limit"), args=("--time-limit", "-1"))
C["--device unknown"] = Case(GOOD, 2, ("--device",), args=("--device", "tpu"))
C["--threads zero"] = Case(GOOD, 2, ("--threads",), args=("--threads", "0"))

# ---- time and memory -----------------------------------------------------------------------------
SLOW_AFTER = textwrap.dedent("""
    import time
    CALLS = [0]
    class Slow(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)
        def forward(self, x):
            CALLS[0] += 1
            if CALLS[0] > 3:
                time.sleep(60)
            return self.fc(x)
    def build_model():
        return Slow()
""")
C["forward too slow"] = Case(H + SLOW_AFTER + DATA + LOSS, 0, ("time limit", "skip", "forward"),
                             args=("--probe", "overfit", "--time-limit", "2"), once=False)
C["forward never returns"] = Case(H + SLOW_AFTER.replace("time.sleep(60)", "while True: pass") + DATA + LOSS, 0,
                                  ("time limit",), args=("--probe", "overfit", "--time-limit", "2"), once=False)
C["first forward too slow"] = Case(H + SLOW_AFTER.replace("> 3", "> 0") + DATA + LOSS, 2,
                                   ("time limit", "--time-limit"), args=("--probe", "nan", "--time-limit", "2"))
C["model too large for memory"] = Case(H + "def build_model():\n    return nn.Sequential(nn.Embedding(10**9, 64), "
                                       "nn.Flatten(), nn.LazyLinear(3))\n" + LOSS + "def sample_batch():\n    return "
                                       "torch.randint(0, 9, (4, 1)), torch.randint(0, 3, (4,))\n", 2,
                                       ("parameters and buffers take 238.4 GB", "of memory is free"))


# ---- running the cases ---------------------------------------------------------------------------
def _prepare(tmp_path: Path, case: Case) -> Path:
    for block in filter(None, case.setup.split("\n---\n")):
        name, _, text = block.partition("=")
        target = tmp_path / name
        if name.endswith("/"):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    path = tmp_path / case.name
    path.parent.mkdir(parents=True, exist_ok=True)
    if case.raw is not None:
        path.write_bytes(case.raw)
    elif case.body is not None:
        path.write_text(case.body)
    return path


def _run(tmp_path: Path, case: Case) -> tuple[int, str]:
    path = _prepare(tmp_path, case)
    args = list(case.args) if case.body is None and case.raw is None else [str(path.relative_to(tmp_path)), *case.args]
    args = ["--threads", "1", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if case.process:
        proc = subprocess.run([sys.executable, "-m", "nndiag.cli", "check", *args],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        return proc.returncode, proc.stdout + proc.stderr
    before = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(main, ["check", *args])
    finally:
        os.chdir(before)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"the CLI raised {result.exception!r}\n{result.output}") from result.exception
    return result.exit_code, result.output


def _no_error(tmp_path: Path, out: str) -> None:
    assert "ERROR" not in out, out


def _json_in_cwd(tmp_path: Path, out: str) -> None:
    assert (tmp_path / "report.json").is_file(), "the report went where the file's chdir pointed"
    assert not (tmp_path / "m" / "sub" / "report.json").exists()


EXTRA_CHECKS = {"no_error": _no_error, "json_in_cwd": _json_in_cwd,
                "frozen_named": lambda tmp_path, out: _frozen_named(tmp_path, out)}


def test_catalogue_is_large_enough():
    assert len(C) >= 70, len(C)


@pytest.mark.parametrize("name", list(C))
def test_bad_input(tmp_path, name):
    case = C[name]
    code, out = _run(tmp_path, case)
    expected = case.code if isinstance(case.code, tuple) else (case.code,)
    assert code in expected, f"exit {code}, expected {expected}\n{out}"
    low = " ".join(out.lower().split())  # a message wrapped to the terminal width reads as one line
    for word in case.words:
        assert word.lower() in low, f"{word!r} missing from:\n{out}"
    assert "Traceback (most recent call last)" not in out, out
    if case.once:  # file level: once; probe level: its table row and its details, not per probe
        n, most = low.count(case.words[0].lower()), 1 if code == 2 else 2
        assert n <= most, f"{case.words[0]!r} printed {n} times:\n{out}"
    if case.check:
        EXTRA_CHECKS[case.check](tmp_path, out)


def test_traceback_flag_still_shows_the_traceback(tmp_path):
    path = _prepare(tmp_path, Case(H + "x = 1 / 0\n", 2, ()))
    result = CliRunner().invoke(main, ["check", str(path), "--traceback", "--probe", "params"])
    assert result.exit_code == 2
    assert "Traceback" in result.output and "ZeroDivisionError" in result.output


def test_identical_probe_errors_collapse(tmp_path):
    """An error that several probes hit (a loss that raises, while the data probe finds why) is
    shown by the first probe only; the others point to it."""
    path = _prepare(tmp_path, C["targets out of range"])
    result = CliRunner().invoke(main, ["check", str(path), "--threads", "1", *FAST])
    out = " ".join(result.output.split())
    assert result.exit_code == 1, result.output
    assert len(re.findall("Target 7 is out of bounds", out)) <= 2, result.output  # its row and details
    assert "the same error as the" in out, result.output


def _frozen_named(tmp_path: Path, out: str) -> None:
    """All frozen is a finding the params and updates probes fail with; nothing errors."""
    assert "ERROR" not in out, out
    assert re.search(r"params\s+FAIL", out) or re.search(r"updates\s+FAIL", out), out


# ---- limits -------------------------------------------------------------------------------------
def test_time_limit_keeps_an_outer_alarm():
    """pytest-timeout (signal method) or the user's own alarm still fires, at its own time."""
    import signal
    import time

    from nndiag.limits import ProbeTimeout, time_limit

    fired: list[float] = []
    previous = signal.signal(signal.SIGALRM, lambda s, f: fired.append(time.monotonic()))
    try:
        start = time.monotonic()
        signal.setitimer(signal.ITIMER_REAL, 0.4)
        with time_limit(5):
            time.sleep(0.05)
        time.sleep(0.6)
        assert len(fired) == 1 and 0.3 < fired[0] - start < 0.6, fired
        with pytest.raises(ProbeTimeout):
            with time_limit(0.1):
                time.sleep(2)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_probe_that_would_not_fit_in_memory_skips_with_the_numbers(tmp_path, monkeypatch):
    """15 float32 parameters (60 bytes): forward probes need ~2 copies, training probes ~5; with
    200 bytes free the first run and the second skip, saying so."""
    import nndiag

    monkeypatch.setenv("NNDIAG_MEMORY_BYTES", "200")
    path = _prepare(tmp_path, Case(H + "def build_model():\n    return nn.Linear(4, 3)\n" + DATA + LOSS, 0, ()))
    report = nndiag.check(path, probes=["params", "data", "gradients"], threads=1)
    status = {r.probe: r for r in report.subjects[0].results}
    assert status["params"].status.value == "pass" and status["data"].status.value == "pass"
    assert status["gradients"].status.value == "skip"
    assert "60 bytes" in status["gradients"].summary and "200 bytes" in status["gradients"].summary


def test_memory_estimate_does_not_allocate():
    """A 64-billion-parameter embedding is sized on the meta device, not built."""
    import torch

    from nndiag.limits import estimate_model_bytes
    from nndiag.subject import Subject

    subject = Subject("huge", model_factory=lambda: torch.nn.Embedding(10**9, 64))
    assert estimate_model_bytes(subject) == 10**9 * 64 * 4


@pytest.mark.parametrize("flag", ["--junit", "--sarif"])
def test_ci_report_to_a_folder_is_a_usage_error(tmp_path, flag):
    path = _prepare(tmp_path, Case(GOOD, 2, ()))
    (tmp_path / "adir").mkdir()
    result = CliRunner().invoke(main, ["check", str(path), "--probe", "params", flag, str(tmp_path / "adir")])
    assert result.exit_code == 2 and "is a folder" in result.output, result.output


def test_api_loss_class_is_a_usage_error():
    import torch

    import nndiag
    from nndiag.errors import UsageError

    with pytest.raises(UsageError, match="the class CrossEntropyLoss"):
        nndiag.check(model=torch.nn.Linear(4, 3), batch=(torch.randn(8, 4), torch.randint(0, 3, (8,))),
                     loss_fn=torch.nn.CrossEntropyLoss)


def test_api_accepts_the_users_optimizer_object_and_leaves_it_alone():
    import torch

    import nndiag

    model = torch.nn.Linear(4, 3)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    report = nndiag.check(model=model, batch=(torch.randn(8, 4), torch.randint(0, 3, (8,))),
                          loss_fn=torch.nn.CrossEntropyLoss(), optimizer=opt, probes=["updates", "lr-range"],
                          settings={"lr-range": {"num_it": 8}}, threads=1)
    assert {r.probe: r.status.value for r in report.subjects[0].results}.keys() == {"updates", "lr-range"}
    assert "error" not in {r.status.value for r in report.subjects[0].results}, report.subjects[0]
    assert opt.param_groups[0]["lr"] == 0.1 and not opt.state
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
