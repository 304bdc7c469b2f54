"""What is checked: a model (or a factory), its data, its loss and how it trains.

A :class:`Subject` holds the user's objects as found (in a model file or passed to
``nndiag.check``). A :class:`Workbench` is a subject bound to a device and a seed: it hands probes
fresh models, the probe batches, optimizers, and runs the user's code with every failure turned
into a :class:`~nndiag.errors.SubjectError` whose message names the problem and the fix.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from nndiag.batches import (
    batch_size,
    call_model,
    describe_shapes,
    iter_tensors,
    split_batch,
    to_device,
)
from nndiag.errors import ProbeSkipped, SubjectError, describe_exception
from nndiag.isolation import ProcessExit
from nndiag.seeding import fork_seeded

DEFAULT_LR = 1e-3  # contract §1: the default optimizer is Adam(params, lr=1e-3)
MAX_PROBE_BATCHES = 64  # never pull more than this many batches from a user's loader


def default_optimizer(params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """The optimizer used when the file has no ``build_optimizer`` (contract §1)."""
    return torch.optim.Adam(params, lr=DEFAULT_LR)


@dataclass
class Subject:
    """The user's objects, as found. Exactly what the contract (§1) names, nothing derived.

    ``model_factory`` returns a new model each call (``build_model``, or a deep copy of a given
    ``model`` instance so the user's own object is never touched). ``batches`` returns an iterable
    of batches (``sample_batch`` wrapped as a one-batch list, ``train_loader``, ``dataloader()``).
    """

    name: str
    model_factory: Callable[[], torch.nn.Module]
    batches: Callable[[], Iterable[Any]] | None = None
    loss_fn: Callable[[Any, Any], torch.Tensor] | None = None
    optimizer_factory: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None
    training_step: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None
    train_step: Callable[[torch.nn.Module, torch.optim.Optimizer, Any], Any] | None = None
    config: dict[str, Any] = field(default_factory=dict)
    weights: Path | None = None
    # the state dict of ``weights``, read once (by the loader's fit check, else the first model)
    weights_state: Any = field(default=None, repr=False, compare=False)
    # Which user names these came from, so messages say "sample_batch()" rather than "the data".
    model_source: str = "build_model()"
    data_source: str = "sample_batch()"
    user_model: torch.nn.Module | None = None  # the user's own instance, never modified

    @property
    def trained(self) -> bool:
        """True when trained weights are loaded into every fresh model (``--weights`` or
        ``nndiag_config["weights"]``): probes then skip judgements that only hold at
        initialisation (loss near ln C, unsaturated outputs, a descending LR curve)."""
        return self.weights is not None


class Workbench:
    """A subject bound to a device and seed, with the probe batches fetched once and shared."""

    def __init__(self, subject: Subject, *, device: str | torch.device = "cpu", seed: int = 0):
        self.subject = subject
        self.device = torch.device(device)
        self.seed = seed
        self._batches: list[Any] = []
        self._iterator: Any = None
        self._exhausted = False
        self._batches_error: SubjectError | None = None
        self.activity = ""  # the user code last called, for a time-limit message
        self._last_forward: tuple[torch.nn.Module, Any] | None = None
        self.model_bytes: int | None = None  # the model's size, estimated before anything runs
        self.free_bytes: int | None = None  # free memory on the device then

    # ---- models and optimizers -------------------------------------------------------------
    def fresh_model(self) -> torch.nn.Module:
        """A new model, built under the run seed (the same weights for every probe), on device."""
        s = self.subject
        with fork_seeded(self.seed):
            model = self._user_call(s.model_source, s.model_factory)
        if not isinstance(model, torch.nn.Module):
            extra = (" If it builds the optimizer too, return only the model and move the optimizer "
                     "into build_optimizer(params)." if isinstance(model, (tuple, list)) else "")
            raise SubjectError(
                f"{s.model_source} returned a {type(model).__name__}, not a torch.nn.Module.",
                hint="Return the model object, e.g. `def build_model(): return MyNet()` (a missing "
                "`return` gives None)." + extra,
            )
        _refuse_meta(model, s.model_source)
        if s.weights is not None:
            if s.weights_state is None:  # read once per run; load_state_dict copies, so sharing is safe
                s.weights_state = torch.load(s.weights, map_location="cpu", weights_only=True)
            try:
                model.load_state_dict(s.weights_state)
            except RuntimeError as exc:
                raise SubjectError(
                    f"The weights file {s.weights} does not fit the model: {describe_exception(exc)}",
                    hint="Point --weights at a state_dict saved from this model.",
                ) from exc
        model.to(self.device)
        model.train()
        if _has_lazy(model):
            self._materialise(model)
        return model

    def _materialise(self, model: torch.nn.Module) -> None:
        """Run one forward under the run seed so lazy modules (nn.LazyLinear, ...) get their
        shapes and initial weights; every probe then sees the same initialised model."""
        batch = self.first_batch()
        inputs, _ = split_batch(batch, self.subject.data_source)
        with fork_seeded(self.seed), torch.no_grad():
            self._user_call("the model's first (lazy-initialising) forward", call_model, model, inputs)

    def trainable_parameters(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        """(name, parameter) pairs that require grad; SubjectError when there are none."""
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not params:
            total = sum(1 for _ in model.parameters())
            if total:
                # A finding of params/updates (which fail naming it); a training probe has
                # nothing to train, so it cannot decide.
                raise ProbeSkipped("every parameter is frozen (requires_grad=False), so there is "
                                   "nothing to train (the params and updates probes report it).")
            what = "no parameters at all"
            raise SubjectError(
                f"The model has {what}, so there is nothing to train.",
                hint="Check that layers are registered as attributes (not kept in a plain list: "
                "use nn.ModuleList) and that requires_grad is not switched off for all of them.",
            )
        return params

    def make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """The subject's optimizer over the model's trainable parameters (Adam 1e-3 by default)."""
        self.trainable_parameters(model)  # fail early and clearly when there is nothing to train
        factory = self.subject.optimizer_factory or default_optimizer
        params = [p for p in model.parameters() if p.requires_grad]
        opt = self._user_call("build_optimizer(params)", factory, params)
        if isinstance(opt, type):
            raise SubjectError(
                f"build_optimizer(params) returned the class {opt.__name__}, not an optimizer.",
                hint=f"Return an instance: `return torch.optim.{opt.__name__}(params, lr=1e-3)`.",
            )
        if isinstance(opt, torch.optim.Optimizer):
            opt = _own_copy(opt, params)
            if _needs_closure(opt) and self.subject.train_step is None:
                opt.step = self._closure_step(opt)  # type: ignore[method-assign]
        if not isinstance(opt, torch.optim.Optimizer):
            raise SubjectError(
                f"build_optimizer(params) returned a {type(opt).__name__}, not a torch.optim.Optimizer.",
                hint="Return an optimizer, e.g. `return torch.optim.Adam(params, lr=1e-3)`.",
            )
        return opt

    def _closure_step(self, opt: torch.optim.Optimizer) -> Callable[..., Any]:
        """``opt.step`` for optimizers that need a closure (LBFGS) when nndiag does the step: the
        closure recomputes the loss of the last forward's model and batch."""
        step = opt.step

        def closure_step(closure=None):
            if closure is None and self._last_forward is not None:
                model, batch = self._last_forward

                def closure():
                    opt.zero_grad(set_to_none=True)
                    loss = self.compute_loss(model, batch)
                    self.backward(loss)
                    return loss
            return step(closure)

        return closure_step

    def preflight(self) -> SubjectError | None:
        """Produce the model, the first batch and the optimizer once, before any probe, then one
        loss with its backward.

        A SubjectError raised here (no model, no data, no optimizer) means nothing can be checked:
        the runner reports it once, at file level. A loss that cannot be computed is returned
        instead: some probes may still judge the cause (the data probe finds targets out of
        range), so the runner decides after the probes whether it is the file-level message.
        """
        s = self.subject
        with fork_seeded(self.seed):
            model = self.fresh_model()
            batch = self.first_batch()
            if any(True for _ in model.parameters()) and not any(
                    p.requires_grad for p in model.parameters()):
                # Everything frozen is a finding (params and updates fail naming it), not a file
                # that cannot be checked: the probes that train report it once between them.
                return SubjectError("Every parameter of the model is frozen (requires_grad=False), "
                                    "so there is nothing to train.",
                                    hint="Unfreeze the layers you mean to train.")
            self.make_optimizer(model)
            if s.train_step is not None:
                return None
            split_batch(batch, s.data_source) if s.training_step is None else None
            try:
                loss = self.compute_loss(model, batch)
                if loss.requires_grad:
                    self.backward(loss)
            except SubjectError as exc:
                if isinstance(exc.__cause__, (SystemExit, ProcessExit)):
                    raise  # an exit explains itself: no probe can say more
                return exc
        return None

    # ---- data ------------------------------------------------------------------------------
    def probe_batches(self, min_samples: int = 0) -> list[Any]:
        """The first batches, on device: the first one, then as many as hold ``min_samples`` samples.

        Always the same batches for the same ``min_samples``, whatever other probes asked for
        before (whole batches: cutting one would change its batch statistics). Batches are pulled
        from the user's loader once per run (under the run seed, so shuffling is repeatable) and
        shared by every probe.
        """
        cached = self._fetch(min_samples)
        batches, total = [], 0
        for b in cached:
            batches.append(b)
            total += batch_size(b)
            if total >= min_samples:
                break
        return [to_device(b, self.device) for b in batches]

    def batches(self, n: int) -> list[Any]:
        """The probe batches holding the first ``n`` samples (see :meth:`probe_batches`)."""
        return self.probe_batches(n)

    def first_batch(self) -> Any:
        """The first probe batch, on device."""
        return self.probe_batches()[0]

    def _fetch(self, min_samples: int) -> list[Any]:
        """The cached batches, extended from the same iterator until ``min_samples`` samples.

        The iterator is kept, never restarted: a generator ``train_loader`` would lose the batches
        already taken, and a ``sample_batch()`` with side effects would be called again.
        """
        if self._batches_error is not None:
            raise self._batches_error
        try:
            if self._iterator is None:
                self._iterator = self._open()
            self._extend(max(min_samples, 1))
        except SubjectError as exc:
            self._batches_error = exc
            raise
        return self._batches

    def _open(self):
        s = self.subject
        if s.batches is None:
            raise SubjectError(
                "The model file gives no data.",
                hint="Define sample_batch(), train_loader or dataloader(), e.g.\n" + _DATA_EXAMPLE,
            )
        with fork_seeded(self.seed):
            iterable = self._user_call(s.data_source, s.batches)
            from nndiag.loading import not_batches

            not_batches(iterable, s.data_source, s.name)
            try:
                return iter(iterable)
            except TypeError:
                raise SubjectError(
                    f"{s.data_source} gave a {type(iterable).__name__}, which is not iterable.",
                    hint="Give a DataLoader or a list of (inputs, targets) batches.",
                ) from None

    def _extend(self, min_samples: int) -> None:
        s = self.subject
        total = sum(batch_size(b) for b in self._batches)
        # Pull under the run seed (a shuffling loader draws random numbers as it goes).
        with fork_seeded(self.seed + len(self._batches)):
            while (total < min_samples and not self._exhausted
                   and len(self._batches) < MAX_PROBE_BATCHES):
                try:
                    batch = self._user_call(f"iterating {s.data_source}", next, self._iterator)
                except StopIteration:
                    self._exhausted = True
                    break
                _check_batch(batch, s.data_source, first=not self._batches)
                self._batches.append(batch)
                total += batch_size(batch)
        if not self._batches:
            raise SubjectError(
                f"{s.data_source} yielded no batches: the loader is empty.",
                hint="Check the dataset is not empty and that drop_last=True does not drop the only "
                "batch (batch_size larger than the dataset).",
            )

    # ---- running the user's code ----------------------------------------------------------
    def forward(self, model: torch.nn.Module, batch: Any) -> Any:
        """The model's output on the batch's inputs, with shape errors explained."""
        inputs, _ = split_batch(batch, self.subject.data_source)
        self.activity = "the model's forward"
        self._last_forward = (model, batch)
        try:
            return call_model(model, inputs)
        except SubjectError:
            raise
        except SystemExit as exc:
            raise _exit_error("the model's forward", f"sys.exit({exc.code})") from exc
        except ProcessExit as exc:
            raise _exit_error("the model's forward", str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - any failure in user code becomes a message
            raise SubjectError(
                f"The model's forward raised {describe_exception(exc).rstrip('.')} on inputs of shape "
                f"{describe_shapes(inputs)}.",
                hint=_forward_hint(exc, inputs, self.subject.data_source),
            ) from exc

    def compute_loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar loss of one batch: ``training_step(model, batch)`` or
        ``loss_fn(model(inputs), targets)``; SubjectError when it is not a scalar tensor."""
        s = self.subject
        if s.training_step is not None:
            loss = self._user_call("training_step(model, batch)", s.training_step, model, batch)
            return self.check_loss(loss, "training_step(model, batch)")
        if s.loss_fn is None:
            raise SubjectError("The model file gives no loss.", hint=_LOSS_HINT)
        output = self.forward(model, batch)
        _, targets = split_batch(batch, s.data_source)
        loss = self._user_call("loss_fn(output, targets)", s.loss_fn, output, targets)
        return self.check_loss(loss, "loss_fn(output, targets)")

    def loss_of_output(self, output: Any, batch: Any) -> torch.Tensor:
        """``loss_fn(output, targets)`` for an output already computed (no training_step)."""
        _, targets = split_batch(batch, self.subject.data_source)
        loss = self._user_call("loss_fn(output, targets)", self.subject.loss_fn, output, targets)
        return self.check_loss(loss, "loss_fn(output, targets)")

    def step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Any, *,
             guard: Callable[[torch.nn.Module], bool] | None = None, keep_output: bool = False) -> "StepResult":
        """One training step, the one every probe and pass uses.

        With the user's ``train_step`` it is called as written (its mistakes are what the probes
        look for); otherwise nndiag does ``zero_grad``, loss, ``backward`` and ``step``. ``guard``
        (e.g. "every gradient is finite") is checked after backward: when it fails the update is
        not applied, and a non-finite loss is not backpropagated (a user ``train_step`` is checked
        after its own update). ``keep_output`` keeps the model's output (``loss_fn`` files only).
        """
        s = self.subject
        if s.train_step is not None:
            out = self._user_call(
                "train_step(model, optimizer, batch)", s.train_step, model, optimizer, batch
            )
            loss = loss_as_float(out, "train_step(model, optimizer, batch)")
            return StepResult(loss, None, guard(model) if guard is not None else None)
        optimizer.zero_grad(set_to_none=True)
        output = None
        if keep_output and s.training_step is None:
            output = self.forward(model, batch)
            loss_t = self.loss_of_output(output, batch)
        else:
            loss_t = self.compute_loss(model, batch)
        loss = float(loss_t.detach())
        if guard is not None and not math.isfinite(loss):
            return StepResult(loss, output, True)
        self.backward(loss_t)
        ok = guard(model) if guard is not None else None
        if ok is not False:
            optimizer.step()
        return StepResult(loss, output, ok)

    def train_one_step(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Any
    ) -> float:
        """One whole update (:meth:`step`); returns the loss as a float (it may be NaN/Inf)."""
        return self.step(model, optimizer, batch).loss

    def backward(self, loss: torch.Tensor) -> None:
        """``loss.backward()`` with the usual mistakes explained."""
        if not loss.requires_grad:
            raise SubjectError(
                "The loss does not require grad, so backward() cannot reach any parameter.",
                hint="Look for a .detach(), .item(), torch.no_grad() or a numpy round trip between "
                "the model's output and the loss.",
            )
        self._user_call("loss.backward()", loss.backward)

    def check_loss(self, loss: Any, what: str) -> torch.Tensor:
        """``loss`` if it is a scalar tensor; otherwise a SubjectError saying how to reduce it."""
        if not isinstance(loss, torch.Tensor):
            raise SubjectError(
                f"{what} returned a {type(loss).__name__}, not a tensor.",
                hint="Return the loss tensor itself (not loss.item()), so it can be backpropagated.",
            )
        if loss.numel() != 1:
            raise SubjectError(
                f"{what} returned a tensor of shape {tuple(loss.shape)}; nndiag needs a scalar loss.",
                hint="Reduce it, e.g. use reduction='mean' in the loss or return loss.mean().",
            )
        return loss.reshape(())

    def _user_call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call user code; any exception becomes a SubjectError that names ``what`` raised."""
        self.activity = what
        try:
            return fn(*args)
        except (SubjectError, StopIteration):
            raise
        except SystemExit as exc:
            raise _exit_error(what, f"sys.exit({exc.code})") from exc
        except ProcessExit as exc:
            raise _exit_error(what, str(exc)) from exc
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise SubjectError(
                f"{what} raised {describe_exception(exc).rstrip('.')}.",
                hint=_call_hint(exc, what, self.subject),
            ) from exc

    @property
    def uses_train_step(self) -> bool:
        """True when the user's ``train_step`` does the whole update (zero_grad/backward/step)."""
        return self.subject.train_step is not None

    has_own_step = uses_train_step  # the older name: "own" meant the user's


def _exit_error(what: str, how: str) -> SubjectError:
    return SubjectError(
        f"{what} called {how}, which would end nndiag's process.",
        hint="Remove the exit from the code nndiag calls (raise an exception instead); put script "
        "code under `if __name__ == '__main__':`.",
    )


def _role(what: str, subject: Subject) -> str:
    """Whose part of the model file ``what`` is: its model, data, loss, optimizer or train_step."""
    if what.startswith(("build_optimizer",)):
        return "optimizer (build_optimizer)"
    if what.startswith("train_step"):
        return "train_step"
    if "loss" in what or what.startswith("training_step"):
        return "loss"
    if subject.data_source in what:
        return "data"
    return "model"


def _call_hint(exc: BaseException, what: str, subject: Subject) -> str:
    """The fix for an exception in user code: whose code it is, and the usual causes."""
    text = str(exc)
    hint = (f"The problem is in the file's {_role(what, subject)} ({what}); "
            "fix it there (run with --traceback to see the line).")
    if isinstance(exc, TypeError) and ("argument" in text) and "(" in what:
        hint += f" nndiag calls it as {what}: give it exactly that signature."
    if "dtype" in text or "scalar type" in text or "can't be cast" in text:
        hint += (" Check the dtypes: class ids for CrossEntropyLoss/NLLLoss are int64 (`y.long()`), "
                 "while MSELoss, L1Loss and the BCE losses need float targets (`y.float()`).")
    return hint


def _forward_hint(exc: BaseException, inputs: Any, source: str) -> str:
    """The fix for a forward that raised, from the error and the inputs' types."""
    text = str(exc)
    dtypes = sorted({str(t.dtype).replace("torch.", "") for t in iter_tensors(inputs)})
    if "dtype" in text or "scalar type" in text:
        if any(d.startswith(("int", "uint", "bool")) for d in dtypes):
            return (f"{source} gives {'/'.join(dtypes)} inputs to layers with float weights: convert "
                    "them, e.g. `x.float()` (keep integer ids only for nn.Embedding inputs).")
        return (f"The inputs are {'/'.join(dtypes)} and the weights have another dtype: convert one "
                "side, e.g. `x.float()` or `model.float()` (or `x.double()` for a float64 model).")
    if "unexpected keyword argument" in text and isinstance(inputs, dict):
        return ("A dict of inputs is passed as keyword arguments (model(**inputs)): name its keys "
                "after forward()'s parameters, or give a tensor or a tuple instead.")
    return f"Make {source} return inputs the model accepts, or fix the layer named in the error."


def _check_batch(batch: Any, source: str, first: bool) -> None:
    """SubjectError for batches no probe can use: numpy arrays, meta tensors, no samples."""
    import numpy as np

    def has_numpy(obj: Any) -> bool:
        if isinstance(obj, np.ndarray):
            return True
        if isinstance(obj, dict):
            return any(has_numpy(v) for v in obj.values())
        if isinstance(obj, (list, tuple)):
            return any(has_numpy(v) for v in obj)
        return False

    if has_numpy(batch):
        raise SubjectError(
            f"{source} gave numpy arrays (ndarray), not torch tensors.",
            hint="Convert them: `torch.from_numpy(x)` (or torch.as_tensor), or use a DataLoader, "
            "which does it for you.",
        )
    tensors = list(iter_tensors(batch))
    if any(t.is_meta for t in tensors):
        raise SubjectError(
            f"{source} gave tensors on the meta device (shapes without data), so nothing can run on them.",
            hint="Create the batch on a real device, e.g. torch.randn(32, 784) (device='cpu').",
        )
    if tensors and batch_size(batch) == 0:
        raise SubjectError(
            f"{source} gave a batch with no samples (its first dimension is 0).",
            hint="Check that the dataset or the slice it comes from is not empty.",
        )


def _refuse_meta(model: torch.nn.Module, source: str) -> None:
    if any(t.is_meta for t in [*model.parameters(), *model.buffers()]):
        raise SubjectError(
            f"The model from {source} has its parameters on the meta device (shapes without data), "
            "so nothing can run on it.",
            hint="Build it on a real device, or materialise it: `model.to_empty(device='cpu')` and "
            "then initialise or load its weights (load_state_dict(..., assign=True)).",
        )


def _has_lazy(model: torch.nn.Module) -> bool:
    from torch.nn.parameter import is_lazy

    return any(is_lazy(p) for p in model.parameters()) or any(
        is_lazy(b) for b in model.buffers())


def _needs_closure(opt: torch.optim.Optimizer) -> bool:
    """True when ``opt.step`` requires a closure (LBFGS)."""
    import inspect

    try:
        param = inspect.signature(type(opt).step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is inspect.Parameter.empty


def _own_copy(opt: torch.optim.Optimizer, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    """``opt`` itself when it holds the parameters it was given; a new optimizer of the same class
    and settings over ``params`` when it holds none of them.

    A notebook user's ``build_optimizer`` often returns the optimizer of their own model: stepping
    it would change their model and their optimizer (its lr, its state), never the copy nndiag
    checks.
    """
    given = {id(p) for p in params}
    held = [p for g in opt.param_groups for p in g["params"]]
    if not held or any(id(p) in given for p in held):
        return opt
    group = opt.param_groups[0]
    settings = {k: group[k] for k in opt.defaults if k in group}
    try:
        return type(opt)(params, **settings)
    except Exception as exc:  # noqa: BLE001 - a custom optimizer with another constructor
        raise SubjectError(
            f"build_optimizer(params) returned a {type(opt).__name__} that holds none of the "
            "parameters it was given (your own model's optimizer?), and nndiag could not build a new "
            f"one like it: {describe_exception(exc)}",
            hint="Build the optimizer from the params argument: `return torch.optim.SGD(params, lr=0.1)`.",
        ) from exc


@dataclass(frozen=True)
class StepResult:
    """One training step: the loss (may be NaN/Inf), the model's output when kept, and the
    guard's verdict (None when there was no guard)."""

    loss: float
    output: Any = None
    grads_finite: bool | None = None


def loss_as_float(value: Any, what: str) -> float:
    """A loss value (tensor or number) returned by user code as a float."""
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise SubjectError(
                f"{what} returned a tensor of shape {tuple(value.shape)}; nndiag needs the scalar loss.",
                hint="Return loss (or loss.item()) after the update.",
            )
        return float(value.detach())
    if isinstance(value, (int, float)):
        return float(value)
    raise SubjectError(
        f"{what} returned {type(value).__name__}; nndiag needs the loss of the step.",
        hint="End train_step with `return loss.item()` (or the loss tensor).",
    )


def copy_user_model(model: torch.nn.Module) -> Callable[[], torch.nn.Module]:
    """A factory of deep copies of the user's model: probes never touch the user's instance."""
    if isinstance(model, torch.jit.ScriptModule):
        # deepcopy of a ScriptModule gives non-leaf parameters no optimizer accepts; a saved and
        # reloaded copy is a true one.
        import io

        buffer = io.BytesIO()
        torch.jit.save(model, buffer)

        def reload() -> torch.nn.Module:
            buffer.seek(0)
            return torch.jit.load(buffer, map_location="cpu")

        return reload
    return lambda: copy.deepcopy(model)


_DATA_EXAMPLE = (
    "    def sample_batch():\n"
    "        return torch.randn(32, 784), torch.randint(0, 10, (32,))"
)
_LOSS_HINT = (
    "Define loss_fn (or criterion), e.g. `loss_fn = torch.nn.CrossEntropyLoss()`, or a "
    "training_step(model, batch) that returns the loss."
)
