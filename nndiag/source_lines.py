"""The user's source line behind a finding: where the module it names is defined or created.

A finding's ``where`` names a module or a parameter (``fc1.weight``, ``conv2 (Conv2d)``,
``<model> (LogSoftmaxByHand)``, ``0 (Linear) -> 1 (ReLU)``). :func:`locate_findings` gives each such
finding the ``file`` and ``line`` of the user's code, found cheaply with :mod:`inspect`:

1. the module's own class, when the user wrote it (``class LogSoftmaxByHand(nn.Module)``);
2. else (a torch layer such as ``nn.Linear``) the line of the nearest user-written parent class that
   creates it (``self.fc1 = nn.Linear(...)`` in that class's source);
3. else (e.g. an ``nn.Sequential`` built in a function) the line of the model factory
   (``def build_model():``).

The model is built once on torch's ``meta`` device (no memory, no weights) with the caller's
random generators restored afterwards; the user's own instance is used as is when one was given.
Anything that fails leaves the findings without a line: this is a convenience, never an error.
"""

from __future__ import annotations

import dataclasses
import inspect
import linecache
import re
from pathlib import Path
from typing import Any, Callable

from nndiag.report import SubjectReport

_TORCH_PREFIXES = ("torch.", "torchvision.", "timm.", "transformers.", "lightning.")


def module_name(where: str) -> str:
    """The module path a ``where`` names: ``"fc1 (Linear) -> relu"`` -> ``"fc1"``; ``"<model> (X)"``
    -> ``""`` (the root)."""
    first = where.split(" -> ")[0].split(" (")[0].strip()
    return "" if first.startswith("<") else first


def _user_class(cls: type) -> bool:
    return not cls.__module__.startswith(_TORCH_PREFIXES) and cls.__module__ != "builtins"


def _functions(cls: type) -> list[Any]:
    """The plain functions defined in ``cls``'s own body (their code objects know their file even
    for a model file imported by path, which ``inspect.getsourcefile(cls)`` may not find)."""
    return [fn for fn in vars(cls).values() if inspect.isfunction(fn)]


def _class_line(cls: type) -> tuple[str, int] | None:
    """The ``class Name`` line of a user-written class: searched in the file of its own methods,
    else of its bases' methods (a ``class Deeper(Net): pass`` has none of its own), else in the
    file ``inspect`` finds for it."""
    pattern = re.compile(rf"^\s*class\s+{re.escape(cls.__name__)}\b")
    files = [fn.__code__.co_filename for klass in cls.__mro__ for fn in _functions(klass)]
    try:
        files.append(inspect.getsourcefile(cls) or "")
    except (OSError, TypeError):
        pass
    for file in dict.fromkeys(f for f in files if f):
        for number, text in enumerate(linecache.getlines(file), start=1):
            if pattern.match(text):
                return file, number
    return None


def _attribute_line(cls: type, attr: str) -> tuple[str, int] | None:
    """The line that assigns ``self.<attr> =`` in the ``__init__`` of ``cls`` or of a user-written
    base class (the first along the MRO)."""
    pattern = re.compile(rf"self\.{re.escape(attr)}\s*(?::[^=]*)?=(?!=)|['\"]{re.escape(attr)}['\"]")
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if not _user_class(klass) or not inspect.isfunction(init):
            continue
        try:
            lines, start = inspect.getsourcelines(init)
        except (OSError, TypeError):
            continue
        for offset, text in enumerate(lines):
            if pattern.search(text):
                return init.__code__.co_filename, start + offset
    return None


def _factory_line(factory: Callable[..., Any] | None) -> tuple[str, int] | None:
    try:
        fn = inspect.unwrap(factory)
        file = inspect.getsourcefile(fn)
        _, line = inspect.getsourcelines(fn)
    except (OSError, TypeError):
        return None
    user_code = not str(getattr(fn, "__module__", "") or "").startswith(_TORCH_PREFIXES)
    return (file, line) if file and user_code else None


def source_of(model: Any, name: str, factory: Callable[..., Any] | None = None) -> tuple[str, int] | None:
    """``(file, line)`` of the user's code for module path ``name`` in ``model`` (see the module doc)."""
    parts = [p for p in name.split(".") if p]
    chain = [model]
    for part in parts:  # walk down as far as the path names modules (a parameter name ends it)
        child = getattr(chain[-1], "_modules", {}).get(part)
        if child is None:
            break
        chain.append(child)
    target = chain[-1]
    if _user_class(type(target)):
        return _class_line(type(target))
    for depth in range(len(chain) - 1, 0, -1):  # nearest user-written parent that creates it
        parent = chain[depth - 1]
        if _user_class(type(parent)):
            found = _attribute_line(type(parent), parts[depth - 1])
            if found:
                return found
    return _factory_line(factory)


def _relative(file: str) -> str:
    """``file`` relative to the working folder when inside it (as a user types paths), else as is."""
    try:
        return str(Path(file).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return file


def _model_for(subject) -> Any:
    user_model = getattr(subject, "user_model", None)
    if user_model is not None:
        return user_model
    import torch

    from nndiag.seeding import preserved_rng

    with preserved_rng(), torch.device("meta"):
        return subject.model_factory()


def locate_findings(report: SubjectReport, subject) -> SubjectReport:
    """``report`` with ``file``/``line`` set on each finding whose ``where`` names a module of the
    subject's model and that has none yet. Never raises."""
    wanted = {f.where for r in report.results for f in r.findings if f.where and not f.line}
    if not wanted:
        return report
    try:
        model = _model_for(subject)
        factory = getattr(subject, "model_factory", None)
        lines = {w: source_of(model, module_name(w), factory) for w in wanted}
    except Exception:  # noqa: BLE001 - a factory that cannot build on meta: no lines, no error
        return report
    results = []
    for r in report.results:
        findings = tuple(
            dataclasses.replace(f, file=_relative(lines[f.where][0]), line=lines[f.where][1])
            if f.where in lines and lines[f.where] and not f.line else f
            for f in r.findings)
        results.append(dataclasses.replace(r, findings=findings))
    return dataclasses.replace(report, results=tuple(results))
