"""Loading a model file (contract §1) into a :class:`~nndiag.subject.Subject`.

The file is imported by path under a private module name, with its own folder first on
``sys.path`` while it loads (so ``import my_sibling`` works), and removed from it afterwards.
Every way this can go wrong ends in a :class:`~nndiag.errors.ModelFileError` that names the
problem and the fix.
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from nndiag.errors import ModelFileError, describe_exception
from nndiag.isolation import ProcessExit, exits_raise, preserved_process_state
from nndiag.options import CONFIG_KEYS  # noqa: F401 - defined once in options; kept importable here
from nndiag.subject import Subject, copy_user_model

_counter = itertools.count()

_MODEL_EXAMPLE = "def build_model():\n    return torch.nn.Sequential(torch.nn.Linear(784, 10))"
_DATA_EXAMPLE = "def sample_batch():\n    return torch.randn(32, 784), torch.randint(0, 10, (32,))"
_LOSS_EXAMPLE = "loss_fn = torch.nn.CrossEntropyLoss()"


def import_model_file(path: str | Path) -> ModuleType:
    """Import the file at ``path`` as a fresh module, with its folder on ``sys.path`` meanwhile."""
    file = Path(path)
    if not file.exists():
        raise ModelFileError(
            f"No such model file: {path}.", hint="Check the path (it is relative to the current folder)."
        )
    if file.is_dir():
        raise ModelFileError(
            f"{path} is a folder, not a model file.", hint="Pass the .py file that defines build_model()."
        )
    if file.suffix != ".py":
        raise ModelFileError(
            f"{path} is not a Python file (expected a .py file).",
            hint="Pass a .py file that defines build_model() or model, data and a loss.",
        )
    source = file.read_bytes()
    if b"\x00" in source:
        raise ModelFileError(
            f"{path} is not a text file (it holds NUL bytes), so it cannot be Python source.",
            hint="Pass the .py source file of your model.",
        )
    try:
        # Compiling the bytes lets Python honour a UTF-8 BOM and a `# -*- coding: ... -*-` line.
        code = compile(source, str(file), "exec")
    except SyntaxError as exc:
        if "codec can't decode" in str(exc.msg) or "encoding" in str(exc.msg):
            raise ModelFileError(
                f"{path} is not a text file in UTF-8 (nor in the encoding its coding line names), "
                "so it cannot be Python source.",
                hint="Save it as UTF-8, or pass the .py source file of your model.",
            ) from exc
        raise ModelFileError(
            f"{path} has a syntax error at line {exc.lineno}: {exc.msg}.",
            hint="Fix that line; `python -m py_compile " + str(path) + "` shows the same error.",
        ) from exc

    name = f"_nndiag_subject_{next(_counter)}_{file.stem}"
    module = ModuleType(name)
    module.__file__ = str(file.resolve())
    folder = str(file.resolve().parent)
    # Whatever the file changes while it imports (the working directory, sys.argv, the global
    # RNG, the default dtype...) is put back: the caller's process must be as it was (contract §4).
    with preserved_process_state():
        sys.path.insert(0, folder)
        sys.modules[name] = module  # dataclasses and pickling look the module up while it executes
        try:
            with exits_raise():
                exec(code, module.__dict__)  # noqa: S102 - running the user's file is the point
        except SystemExit as exc:
            raise ModelFileError(
                f"{path} called sys.exit({exc.code}) while being imported.",
                hint="Put script code under `if __name__ == '__main__':` so importing the file only "
                "defines things.",
            ) from exc
        except ProcessExit as exc:
            raise ModelFileError(
                f"{path} called {exc.how}({exc.code}) while being imported.",
                hint="Put script code under `if __name__ == '__main__':` so importing the file only "
                "defines things.",
            ) from exc
        except ModuleNotFoundError as exc:
            missing = exc.name or str(exc)
            sibling = (file.resolve().parent / f"{missing.split('.')[0]}.py").exists()
            raise ModelFileError(
                f"Importing {path} raised {describe_exception(exc).rstrip('.')}.",
                hint=(f"The sibling file {missing}.py exists but fails to import; fix it."
                      if sibling else f"Install it (pip install {missing.split('.')[0]}) in the "
                      "environment nndiag runs in, or fix the name."),
            ) from exc
        except Exception as exc:  # noqa: BLE001
            raise ModelFileError(
                f"Importing {path} raised {describe_exception(exc).rstrip('.')}.",
                hint="Fix the error (run with --traceback to see the line), or move slow or fragile "
                "work into build_model()/dataloader().",
            ) from exc
        finally:
            sys.modules.pop(name, None)
    return module


def _first(module: ModuleType, *names: str) -> tuple[str, Any] | tuple[None, None]:
    for n in names:
        if hasattr(module, n):
            return n, getattr(module, n)
    return None, None


def subject_from_module(module: ModuleType, name: str) -> Subject:
    """Find the contract's names in an imported model file and build the Subject."""
    found, obj = _first(module, "build_model", "model")
    if found is None:
        raise ModelFileError(
            f"{name} defines neither build_model() nor model.",
            hint="Add a function that returns a fresh model, e.g.\n    " + _MODEL_EXAMPLE.replace("\n", "\n    "),
        )
    if found == "build_model":
        if isinstance(obj, torch.nn.Module):
            cls = type(obj).__name__
            raise ModelFileError(
                f"build_model in {name} is an instance of {cls} (a model), not a function that builds one.",
                hint=f"Write `def build_model(): return {cls}()`, or name the instance `model = {cls}()`.",
            )
        if not callable(obj):
            raise ModelFileError(f"build_model in {name} is not a function.", hint="Define `def build_model(): ...`.")
        factory, model_source, user_model = obj, "build_model()", None
    else:
        if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
            raise ModelFileError(
                f"model in {name} is the class {obj.__name__}, not a model instance.",
                hint=f"Write `model = {obj.__name__}()` (or `def build_model(): return {obj.__name__}()`).",
            )
        if not isinstance(obj, torch.nn.Module):
            raise ModelFileError(
                f"model in {name} is a {type(obj).__name__}, not a torch.nn.Module.",
                hint="Set `model = MyNet()` or define build_model().",
            )
        factory, model_source, user_model = copy_user_model(obj), "model", obj

    batches, data_source = _data_source(module, name)

    _, loss_fn = _first(module, "loss_fn", "criterion")
    training_step = getattr(module, "training_step", None)
    train_step = getattr(module, "train_step", None)
    if loss_fn is None and training_step is None and train_step is None:
        raise ModelFileError(
            f"{name} defines no loss: none of loss_fn, criterion, training_step or train_step.",
            hint="Add e.g. `" + _LOSS_EXAMPLE + "`.",
        )
    loss_name = "loss_fn" if hasattr(module, "loss_fn") else "criterion"
    if isinstance(loss_fn, type):
        raise ModelFileError(
            f"{loss_name} in {name} is the class {loss_fn.__name__}, not a loss object.",
            hint=f"Write `{loss_name} = nn.{loss_fn.__name__}()` (with parentheses).",
        )
    for attr, value in ((loss_name, loss_fn), ("training_step", training_step), ("train_step", train_step)):
        if value is not None and not callable(value):
            raise ModelFileError(f"{attr} in {name} is a {type(value).__name__}, not callable.",
                                 hint=f"Make {attr} a function or a loss module, e.g. `" + _LOSS_EXAMPLE + "`.")

    optimizer_factory = getattr(module, "build_optimizer", None)
    if optimizer_factory is not None and not callable(optimizer_factory):
        raise ModelFileError(
            f"build_optimizer in {name} is not a function.",
            hint="Define `def build_optimizer(params): return torch.optim.Adam(params, lr=1e-3)`.",
        )
    config = getattr(module, "nndiag_config", {}) or {}
    if not isinstance(config, dict):
        raise ModelFileError(
            f"nndiag_config in {name} is a {type(config).__name__}, not a dict.",
            hint='Write e.g. nndiag_config = {"skip": ["lr-range"], "overfit": {"steps": 300}}.',
        )
    weights = config.get("weights")
    if weights is not None:
        weights = (Path(module.__file__).parent / weights).resolve()
    return Subject(
        name=name,
        model_factory=factory,
        batches=batches,
        loss_fn=loss_fn,
        optimizer_factory=optimizer_factory,
        training_step=training_step,
        train_step=train_step,
        config=dict(config),
        weights=weights,
        model_source=model_source,
        data_source=data_source,
        user_model=user_model,
    )


def _data_source(module: ModuleType, name: str):
    if hasattr(module, "sample_batch"):
        fn = module.sample_batch
        if not callable(fn):
            raise ModelFileError(
                f"sample_batch in {name} is a {type(fn).__name__}, not a function.",
                hint="Wrap it: `def sample_batch(): return x, y` (or name a list of batches train_loader).",
            )
        return (lambda: [fn()]), "sample_batch()"
    if hasattr(module, "train_loader"):
        loader = module.train_loader
        if callable(loader) and not hasattr(loader, "__iter__"):
            raise ModelFileError(
                f"train_loader in {name} is a function, not a loader.",
                hint="Call it (`train_loader = make_loader()`), or rename the function dataloader().",
            )
        not_batches(loader, "train_loader", name)
        return (lambda: loader), "train_loader"
    if hasattr(module, "dataloader"):
        fn = module.dataloader
        if not callable(fn) or hasattr(fn, "__iter__"):
            raise ModelFileError(
                f"dataloader in {name} is a {type(fn).__name__}, not a function.",
                hint="Name the loader itself train_loader, or wrap it: `def dataloader(): return loader`.",
            )
        return fn, "dataloader()"
    raise ModelFileError(
        f"{name} gives no data: none of sample_batch(), train_loader or dataloader() is defined.",
        hint="Add e.g.\n    " + _DATA_EXAMPLE.replace("\n", "\n    "),
    )


def not_batches(obj: Any, source: str, name: str) -> None:
    """Error when ``obj`` is a Dataset (single samples) where a loader of batches was meant."""
    from torch.utils.data import DataLoader, Dataset

    if isinstance(obj, Dataset) and not isinstance(obj, DataLoader):
        error = ModelFileError if source == "train_loader" else _subject_error
        raise error(
            f"{source} in {name} gives a {type(obj).__name__}: a Dataset of single samples, not a "
            "loader of batches.",
            hint="Wrap it in a DataLoader: `DataLoader(dataset, batch_size=32, shuffle=True)`.",
        )


def _subject_error(message: str, hint: str = ""):
    from nndiag.errors import SubjectError

    return SubjectError(message, hint=hint)


def load_model_file(path: str | Path, *, weights: str | Path | None = None) -> Subject:
    """Import a model file and return its Subject; ModelFileError when it cannot be used."""
    module = import_model_file(path)
    subject = subject_from_module(module, str(path))
    if weights is not None:
        wpath = Path(weights)
        if not wpath.is_file():
            raise ModelFileError(f"No such weights file: {weights}.", hint="Pass the path of a saved state_dict (.pt).")
        subject.weights = wpath.resolve()
    if subject.weights is not None and not Path(subject.weights).is_file():
        raise ModelFileError(
            f"nndiag_config of {path} names the weights file {subject.weights}, which does not exist.",
            hint="Train the model first (python -m reference_models.train NAME --out DIR) or fix the path.",
        )
    if subject.weights is not None:
        check_weights_fit(subject)
    return subject


def check_weights_fit(subject: Subject) -> None:
    """ModelFileError naming the mismatched keys when the weights file does not fit the model."""
    try:
        state = torch.load(subject.weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - not a state_dict, or pickled objects refused
        raise ModelFileError(
            f"{subject.weights} cannot be loaded as a state_dict: {describe_exception(exc).rstrip('.')}.",
            hint="Save it with torch.save(model.state_dict(), path).",
        ) from exc
    subject.weights_state = state  # read once per run: every fresh model loads this copy
    from nndiag.seeding import fork_seeded

    try:  # seeded and forked: checking the fit must not advance the caller's RNG (contract §4)
        with fork_seeded(0):
            model = subject.model_factory()
    except Exception:  # noqa: BLE001 - a failing build is reported by the probes, with its message
        return
    if not isinstance(state, dict) or not isinstance(model, torch.nn.Module):
        return
    expected, given = set(model.state_dict()), set(state)
    missing, unexpected = sorted(expected - given), sorted(given - expected)
    shapes = sorted(k for k in expected & given
                    if tuple(model.state_dict()[k].shape) != tuple(getattr(state[k], "shape", ())))
    if missing or unexpected or shapes:
        def few(keys):
            return ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
        parts = [f"missing {few(missing)}" if missing else "",
                 f"unexpected {few(unexpected)}" if unexpected else "",
                 f"different shapes for {few(shapes)}" if shapes else ""]
        raise ModelFileError(
            f"The weights file {subject.weights} does not fit the model of {subject.name}: "
            + "; ".join(p for p in parts if p) + ".",
            hint="Point --weights at a state_dict saved from this model (another model's, or a file "
            "saved from a different architecture, will not load).",
        )
