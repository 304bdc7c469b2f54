"""The Workbench: a :class:`~nndiag.subject.Subject` bound to a device and a seed.

It hands probes fresh models, the probe batches (fetched once and shared), optimizers, and the
one training step; it runs the user's code with every failure turned into a
:class:`~nndiag.errors.SubjectError` whose message names the problem and the fix
(:mod:`nndiag.user_errors`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch

from nndiag.batches import batch_size, call_model, split_batch, to_device
from nndiag.errors import ProbeSkipped, SubjectError, describe_exception
from nndiag.isolation import ProcessExit
from nndiag.activity import count_training_step
from nndiag.optimizers import checked_optimizer, default_optimizer, needs_closure
from nndiag.precision import OFF, Precision, Scalers, scaled_update
from nndiag.seeding import fork_seeded
from nndiag.subject import Subject
from nndiag.user_errors import (
    DATA_EXAMPLE,
    LOSS_HINT,
    call_error,
    check_batch,
    check_loss,
    check_model,
    forward_error,
    loss_as_float,
)

MAX_PROBE_BATCHES = 64  # never pull more than this many batches from a user's loader


class Workbench:
    """A subject bound to a device and seed, with the probe batches fetched once and shared."""

    def __init__(self, subject: Subject, *, device: str | torch.device = "cpu", seed: int = 0,
                 precision: Precision = OFF):
        self.subject = subject
        self.device = torch.device(device)
        self.seed = seed
        self.precision = precision  # --autocast: every forward runs under it (nndiag.precision)
        self.scalers = Scalers(precision)  # fp16: one GradScaler per optimizer
        self._batches: list[Any] = []
        self._iterator: Any = None
        self._exhausted = False
        self._batches_error: SubjectError | None = None
        self.activity = ""  # the user code last called, for a time-limit message
        self._last_forward: tuple[torch.nn.Module, Any] | None = None
        self.model_bytes: int | None = None  # the model's size, estimated before anything runs
        self.free_bytes: int | None = None  # free memory on the device then

    # ---- models and optimizers -------------------------------------------------------------
    def fresh_model(self, seed: int | None = None) -> torch.nn.Module:
        """A new model, built under the run seed (the same weights for every probe), on device.

        ``seed`` builds it under another seed instead: a second initialisation, for a probe that
        confirms a verdict does not hang on one draw (overfit)."""
        s = self.subject
        with fork_seeded(self.seed if seed is None else seed):
            model = self._user_call(s.model_source, s.model_factory)
        check_model(model, s.model_source)
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
        user = self.subject.user_model
        user_params = frozenset(id(p) for p in user.parameters()) if user is not None else frozenset()
        opt = checked_optimizer(self._user_call("build_optimizer(params)", factory, params), params,
                                user_params)
        if needs_closure(opt) and self.subject.train_step is None:
            opt.step = self._closure_step(opt)  # type: ignore[method-assign]
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
                hint="Define sample_batch(), train_loader or dataloader(), e.g.\n" + DATA_EXAMPLE,
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
                check_batch(batch, s.data_source, first=not self._batches)
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
            with self.precision.autocast():
                return call_model(model, inputs)
        except SubjectError:
            raise
        except (SystemExit, ProcessExit, Exception) as exc:  # noqa: BLE001 - any failure becomes a message
            raise self.precision.explain(forward_error(exc, inputs, self.subject.data_source), exc) from exc

    def compute_loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The scalar loss of one batch: ``training_step(model, batch)`` or
        ``loss_fn(model(inputs), targets)``; SubjectError when it is not a scalar tensor."""
        s = self.subject
        if s.training_step is not None:
            with self.precision.autocast():
                loss = self._user_call("training_step(model, batch)", s.training_step, model, batch)
            return self.check_loss(loss, "training_step(model, batch)")
        if s.loss_fn is None:
            raise SubjectError("The model file gives no loss.", hint=LOSS_HINT)
        return self.loss_of_output(self.forward(model, batch), batch)

    def loss_of_output(self, output: Any, batch: Any) -> torch.Tensor:
        """``loss_fn(output, targets)`` for an output already computed (no training_step)."""
        _, targets = split_batch(batch, self.subject.data_source)
        with self.precision.autocast():  # as the AMP recipe: autocast picks float32 for losses
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
        Under fp16 autocast the loss is scaled and a step whose scaled backward overflowed is done
        again at the scaler's lower scale (nndiag.precision), so a step ends in an update.
        """
        count_training_step()  # the progress line shows the step count inside long probes
        s = self.subject
        if s.train_step is not None:
            with self.precision.autocast():  # the user's own backward: no scaler
                out = self._user_call(
                    "train_step(model, optimizer, batch)", s.train_step, model, optimizer, batch
                )
            loss = loss_as_float(out, "train_step(model, optimizer, batch)")
            return StepResult(loss, None, guard(model) if guard is not None else None)
        scaler = self.scalers.get(optimizer, closure=needs_closure(optimizer))
        while True:
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
            self.backward(loss_t if scaler is None else scaler.scale(loss_t))
            if scaler is not None:
                scaler.unscale_(optimizer)  # the guard and every probe read the true gradients
            ok = guard(model) if guard is not None else None
            if scaler is None:
                if ok is not False:
                    optimizer.step()
                return StepResult(loss, output, ok)
            skipped, retry = scaled_update(scaler, optimizer, ok is not False)
            if not (retry and math.isfinite(loss)):
                return StepResult(loss, output, ok, skipped)
            self.scalers.redone += 1

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
        return check_loss(loss, what)

    def _user_call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Call user code; any exception becomes a SubjectError that names ``what`` raised."""
        self.activity = what
        try:
            return fn(*args)
        except (SubjectError, StopIteration):
            raise
        except (SystemExit, ProcessExit, Exception) as exc:  # noqa: BLE001 - user code may raise anything
            raise self.precision.explain(call_error(exc, what, self.subject), exc) from exc

    @property
    def uses_train_step(self) -> bool:
        """True when the user's ``train_step`` does the whole update (zero_grad/backward/step)."""
        return self.subject.train_step is not None

    has_own_step = uses_train_step  # the older name: "own" meant the user's


def _has_lazy(model: torch.nn.Module) -> bool:
    """True when the model has lazy parameters or buffers (nn.LazyLinear, ...) still unshaped."""
    from torch.nn.parameter import is_lazy

    return any(is_lazy(p) for p in model.parameters()) or any(
        is_lazy(b) for b in model.buffers())


@dataclass(frozen=True)
class StepResult:
    """One training step: the loss (may be NaN/Inf), the model's output when kept, the guard's
    verdict (None when there was no guard) and whether a loss scaler skipped the update."""

    loss: float
    output: Any = None
    grads_finite: bool | None = None
    skipped: bool = False  # fp16: the loss scaler skipped the update (it overflowed even unscaled)

