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
    split_batch,
    to_device,
)
from nndiag.errors import SubjectError, describe_exception
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

    # ---- models and optimizers -------------------------------------------------------------
    def fresh_model(self) -> torch.nn.Module:
        """A new model, built under the run seed (the same weights for every probe), on device."""
        s = self.subject
        with fork_seeded(self.seed):
            model = self._user_call(s.model_source, s.model_factory)
        if not isinstance(model, torch.nn.Module):
            raise SubjectError(
                f"{s.model_source} returned a {type(model).__name__}, not a torch.nn.Module.",
                hint="Return the model object, e.g. `def build_model(): return MyNet()`.",
            )
        if s.weights is not None:
            state = torch.load(s.weights, map_location="cpu", weights_only=True)
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                raise SubjectError(
                    f"The weights file {s.weights} does not fit the model: {describe_exception(exc)}",
                    hint="Point --weights at a state_dict saved from this model.",
                ) from exc
        model.to(self.device)
        model.train()
        return model

    def trainable_parameters(self, model: torch.nn.Module) -> list[tuple[str, torch.nn.Parameter]]:
        """(name, parameter) pairs that require grad; SubjectError when there are none."""
        params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        if not params:
            total = sum(1 for _ in model.parameters())
            what = "no parameters at all" if total == 0 else "no parameter that requires grad"
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
        if not isinstance(opt, torch.optim.Optimizer):
            raise SubjectError(
                f"build_optimizer(params) returned a {type(opt).__name__}, not a torch.optim.Optimizer.",
                hint="Return an optimizer, e.g. `return torch.optim.Adam(params, lr=1e-3)`.",
            )
        return opt

    # ---- data ------------------------------------------------------------------------------
    def probe_batches(self, min_samples: int = 0) -> list[Any]:
        """Batches on device: at least the first one, then more until ``min_samples`` samples.

        Batches are pulled from the user's loader once per run (under the run seed, so shuffling
        is repeatable) and shared by every probe.
        """
        batches = self._fetch(min_samples)
        return [to_device(b, self.device) for b in batches]

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
        try:
            return call_model(model, inputs)
        except Exception as exc:  # noqa: BLE001 - any failure in user code becomes a message
            raise SubjectError(
                f"The model's forward raised {describe_exception(exc)} on inputs of shape "
                f"{describe_shapes(inputs)}.",
                hint=f"Make {self.subject.data_source} return inputs the model accepts, or fix the "
                "layer named in the error.",
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

    def train_one_step(
        self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: Any
    ) -> float:
        """One whole update; returns the loss as a float (it may be NaN/Inf).

        With the user's ``train_step`` it is called as written (its mistakes are what the probes
        look for); otherwise nndiag does ``zero_grad``, loss, ``backward`` and ``step``.
        """
        s = self.subject
        if s.train_step is not None:
            out = self._user_call(
                "train_step(model, optimizer, batch)", s.train_step, model, optimizer, batch
            )
            return loss_as_float(out, "train_step(model, optimizer, batch)")
        optimizer.zero_grad(set_to_none=True)
        loss = self.compute_loss(model, batch)
        self.backward(loss)
        optimizer.step()
        return float(loss.detach())

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
        try:
            return fn(*args)
        except (SubjectError, StopIteration):
            raise
        except Exception as exc:  # noqa: BLE001 - user code may raise anything
            raise SubjectError(
                f"{what} raised {describe_exception(exc).rstrip('.')}.",
                hint="Fix the error in your code (run with --traceback to see where it happened).",
            ) from exc

    @property
    def has_own_step(self) -> bool:
        """True when the user's ``train_step`` does the whole update (zero_grad/backward/step)."""
        return self.subject.train_step is not None


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


def is_finite(x: float) -> bool:
    """math.isfinite that accepts anything float() accepts."""
    return math.isfinite(float(x))


def copy_user_model(model: torch.nn.Module) -> Callable[[], torch.nn.Module]:
    """A factory of deep copies of the user's model: probes never touch the user's instance."""
    return lambda: copy.deepcopy(model)


_DATA_EXAMPLE = (
    "    def sample_batch():\n"
    "        return torch.randn(32, 784), torch.randint(0, 10, (32,))"
)
_LOSS_HINT = (
    "Define loss_fn (or criterion), e.g. `loss_fn = torch.nn.CrossEntropyLoss()`, or a "
    "training_step(model, batch) that returns the loss."
)
