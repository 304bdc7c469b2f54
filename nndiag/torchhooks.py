"""Watching a model run: module hooks and a TorchFunctionMode, always cleaned up.

Module hooks alone miss functional calls (``torch.relu(self.fc1(x))`` is how the tutorials write
it), so :class:`CallTracer` combines

* forward pre/post hooks on every submodule, keeping a stack that says which module is running
  (its dotted path and class, e.g. ``features.3 (Conv2d)``), and which module produced a tensor;
* a ``torch.overrides.TorchFunctionMode`` that sees every torch function, ``torch.nn.functional``
  function and tensor method call, with the module it happened in.

Every handle is removed and the mode exited in ``finally``, even when the model raises
(torchinfo's ``forward_pass`` does the same).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
from torch.overrides import TorchFunctionMode

from nndiag.batches import iter_tensors


def module_label(path: str, module: torch.nn.Module) -> str:
    """``features.3 (Conv2d)``; the root module is shown as ``<model> (ClassName)``."""
    return f"{path or '<model>'} ({type(module).__name__})"


def function_name(func: Callable[..., Any]) -> str:
    """A readable name of a torch callable: ``torch.log``, ``F.relu``, ``Tensor.relu``."""
    name = getattr(func, "__name__", None) or repr(func)
    module = getattr(func, "__module__", "") or ""
    qual = getattr(func, "__qualname__", "") or ""
    if qual.startswith("Tensor.") or qual.startswith("TensorBase."):
        return "Tensor." + name
    if module.startswith("torch.nn.functional"):
        return "F." + name
    return "torch." + name


def base_name(func: Callable[..., Any]) -> str:
    """The bare op name without a trailing ``_`` (in-place): ``relu_`` and ``relu`` give ``relu``."""
    name = getattr(func, "__name__", "") or ""
    return name[:-1] if name.endswith("_") and not name.endswith("__") else name


@dataclass(frozen=True)
class CallInfo:
    """One intercepted call: what ran, where, on what, and what it returned."""

    func: Callable[..., Any]
    name: str  # function_name(func)
    op: str  # base_name(func)
    module_path: str
    module: torch.nn.Module | None
    args: tuple
    kwargs: dict
    output: Any
    producer: str | None  # path of the module whose output is the first tensor argument, if any

    @property
    def where(self) -> str:
        """The module it ran in, as ``path (Class)``."""
        if self.module is None:
            return "<outside the model>"
        return module_label(self.module_path, self.module)


class _Mode(TorchFunctionMode):
    def __init__(self, tracer: "CallTracer") -> None:
        super().__init__()
        self.tracer = tracer

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        return self.tracer._on_torch_call(func, args, kwargs)


class CallTracer:
    """Sees every module call and every torch function call of a model while active.

    Subclass or pass callbacks:

    * ``on_call(info: CallInfo)`` after each torch function call (``info.output`` is the result);
    * ``before_call(func, args, kwargs, module_path, module)`` before it (inputs of in-place ops
      are still intact there); return value ignored;
    * ``on_module(path, module, inputs, output)`` after each module's forward.

    ``ops`` restricts ``on_call``/``before_call`` to those base op names (e.g. ``{"relu"}``) to keep
    the cost low; ``None`` watches everything. Tensor attribute reads are never reported.
    """

    _IGNORED = {"__get__", "__set__", "size", "dim", "numel", "__len__", "__repr__", "__format__",
                "is_floating_point", "is_complex", "__torch_function__", "stride", "data_ptr",
                "__hash__", "element_size", "__bool__", "is_contiguous", "requires_grad_", "__iter__"}

    def __init__(
        self,
        model: torch.nn.Module,
        *,
        on_call: Callable[[CallInfo], None] | None = None,
        before_call: Callable[..., None] | None = None,
        on_module: Callable[[str, torch.nn.Module, tuple, Any], None] | None = None,
        ops: set[str] | None = None,
    ) -> None:
        self.model = model
        self.on_call = on_call
        self.before_call = before_call
        self.on_module = on_module
        self.ops = ops
        self._stack: list[tuple[str, torch.nn.Module]] = []
        self._producers: dict[int, tuple[str, torch.Tensor]] = {}
        self._quiet = 0

    # ---- where are we ------------------------------------------------------------------------
    @property
    def current(self) -> tuple[str, torch.nn.Module | None]:
        """(path, module) of the innermost module running now; ("", None) outside the model."""
        return self._stack[-1] if self._stack else ("", None)

    def producer_of(self, tensor: Any) -> str | None:
        """Path of the module whose forward returned ``tensor`` (this very object), if any."""
        if not isinstance(tensor, torch.Tensor):
            return None
        entry = self._producers.get(id(tensor))
        return entry[0] if entry is not None and entry[1] is tensor else None

    @contextmanager
    def quiet(self) -> Iterator[None]:
        """Run nndiag's own tensor code without tracing it."""
        self._quiet += 1
        try:
            yield
        finally:
            self._quiet -= 1

    # ---- hooks ---------------------------------------------------------------------------------
    def _pre(self, path: str):
        def hook(module, inputs):
            self._stack.append((path, module))
        return hook

    def _post(self, path: str):
        def hook(module, inputs, output):
            if self._stack and self._stack[-1][1] is module:
                self._stack.pop()
            if self._quiet:
                return None
            with self.quiet():
                for t in iter_tensors(output):
                    self._producers[id(t)] = (path, t)
                if self.on_module is not None:
                    self.on_module(path, module, inputs, output)
            return None
        return hook

    def _on_torch_call(self, func, args, kwargs):
        op = base_name(func)
        watched = not self._quiet and op not in self._IGNORED and (self.ops is None or op in self.ops)
        if not watched:
            return func(*args, **kwargs)
        path, module = self.current
        if self.before_call is not None:
            with self.quiet():
                self.before_call(func, args, kwargs, path, module)
        output = func(*args, **kwargs)
        if self.on_call is not None:
            first = next(iter(iter_tensors(args)), None)
            with self.quiet():
                info = CallInfo(func, function_name(func), op, path, module, args, kwargs, output,
                                self.producer_of(first))
                self.on_call(info)
        return output

    @contextmanager
    def active(self) -> Iterator["CallTracer"]:
        """Attach the hooks and enter the mode; detach and exit on the way out, whatever happens."""
        handles = []
        try:
            for path, module in self.model.named_modules():
                handles.append(module.register_forward_pre_hook(self._pre(path)))
                handles.append(module.register_forward_hook(self._post(path), always_call=True))
            with _Mode(self):
                yield self
        finally:
            for h in handles:
                h.remove()
            self._stack.clear()
            self._producers.clear()


def uncompiled(model: torch.nn.Module) -> torch.nn.Module:
    """The eager module under ``torch.compile`` wrappers (``OptimizedModule._orig_mod``), else the
    model itself. Hooks belong on the wrapper (on the module it compiles they would be traced into
    the compiled region); names and replays come from the eager module, so a parameter reads
    ``0.weight``, not ``_orig_mod.0.weight``, and a replay runs op by op without recompiling."""
    while isinstance(getattr(model, "_orig_mod", None), torch.nn.Module) and \
            type(model).__name__ == "OptimizedModule":
        model = model._orig_mod
    return model


@contextmanager
def train_mode(model: torch.nn.Module, training: bool) -> Iterator[torch.nn.Module]:
    """Put ``model`` (and every submodule) in train or eval mode; restore each flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.train(training)
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def is_float_tensor(x: Any) -> bool:
    """True for floating-point (or complex) tensors: the ones that can hold NaN/Inf."""
    return isinstance(x, torch.Tensor) and (x.is_floating_point() or x.is_complex())


def count_non_finite(obj: Any) -> int:
    """How many NaN/Inf values the floating-point tensors inside ``obj`` hold (one sync each)."""
    return sum(int((~torch.isfinite(t.detach())).sum()) for t in iter_tensors(obj)
               if is_float_tensor(t) and t.numel())


def all_finite(obj: Any) -> bool:
    """True when every floating-point tensor inside ``obj`` holds only finite values."""
    for t in iter_tensors(obj):
        if is_float_tensor(t) and t.numel() and not bool(torch.isfinite(t.detach()).all()):
            return False
    return True
