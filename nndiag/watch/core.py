"""The watch itself: hooks on the user's model and optimizer, the step clock, policies.

What runs when (``N`` = ``log_every``, ``K`` = ``sample_every``):

* every training forward: a root forward pre-hook keeps a *reference* to the inputs and the CPU
  RNG state (for the NaN replay); nothing is copied.
* every ``optimizer.step()`` (a step pre-hook, so after ``scaler.unscale_`` and before the update):
  one fused ``torch._foreach_norm`` of the gradients, kept on device. With ``sync_every=1`` (the
  default on CPU, where a sync costs nothing) its sum is read at once, so a NaN stops training
  *before* the update corrupts the weights.
* every ``w.step(loss)`` (or every optimizer step when ``w.step`` is never called): the loss,
  detached, kept on device; every N steps one flush to the host and every check judges.
* every K steps: the next training forward is traced for dead/saturated units, and the weights are
  copied around the optimizer step for the update ratios. Those numbers stay on the device until
  the next flush reads them with the rest (one copy), so a sample step adds no host sync.

All hooks are removed in :meth:`Watch.close` (``__exit__``), whatever happened.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable

import torch

from nndiag.errors import UsageError
from nndiag.torchhooks import uncompiled
from nndiag.training_trace import _max_abs_finite
from nndiag.watch.checks import AmpCheck, NanCheck, UpdatesCheck, make_checks
from nndiag.watch.config import WatchConfig
from nndiag.watch.distributed import attach, unwrap
from nndiag.watch.recorder import UNMEASURED, Recorder, sentinel_parameters
from nndiag.watch.replay import Captured, replay
from nndiag.watch.results import build_report
from nndiag.watch.sampler import ActivationSampler, UpdateSampler, store_samples
from nndiag.watch.events import TrainingStopped, WatchHook, WatchWarning
from nndiag.watch.steady import capture_hook, step_pre_hook
from nndiag.watch.timeline import Event, Timeline

__all__ = ["Watch", "TrainingStopped", "WatchWarning", "WatchHook", "sentinel_parameters"]


class Watch:
    """Watches one model (and its optimizer) while the user's own loop trains it."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                 config: WatchConfig, scaler: Any = None, scheduler: Any = None, name: str = "",
                 raise_on_stop: bool = True, on_event: Callable[[Event], None] | None = None,
                 sync_every: int | None = None,
                 replay_loss: Callable[[torch.nn.Module, Any], torch.Tensor] | None = None,
                 external_gradients: bool = False, replay_shared: tuple = (),
                 explicit_steps: bool = False) -> None:
        if not isinstance(model, torch.nn.Module):
            raise UsageError(f"nndiag.watch needs a torch.nn.Module, not {type(model).__name__}.",
                             hint="Pass the model you train: nndiag.watch(model, optimizer).")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise UsageError(f"optimizer must be a torch.optim.Optimizer, not {type(optimizer).__name__}.",
                             hint="Pass the optimizer whose step() your loop calls.")
        model, wrapper = unwrap(model)  # DDP: watch its module (names without "module.")
        self.model, self.optimizer, self.scaler, self.scheduler = model, optimizer, scaler, scheduler
        self.cfg = config
        eager = uncompiled(model)  # torch.compile: hooks on the wrapper, names without _orig_mod.
        self.name = name or f"{type(eager).__name__} (watched)"
        self.raise_on_stop, self.on_event, self.replay_loss = raise_on_stop, on_event, replay_loss
        self.external_gradients = external_gradients
        self.replay_shared = replay_shared  # objects the replay must not copy (a Trainer)
        self.timeline = Timeline()
        self.checks = make_checks(config)
        self._by_id = {c.id: c for c in self.checks}
        named = [(n, p) for n, p in eager.named_parameters() if p.requires_grad]
        self._names, self._params = [n for n, _ in named], [p for _, p in named]
        self.recorder = Recorder(self._names, self._params)
        self.sampling = config.profile != "minimal"
        self._sample_every = config.sample_every if self.sampling else 0  # 0: never sampled
        self.activations = ActivationSampler(model, config.saturation_input, config.saturation_unit,
                                             trace_root=eager)
        self.updates = UpdateSampler(self._names, self._params)
        first = next(iter(self._params), None)
        on_cuda = first is not None and first.is_cuda
        self.sync_every = sync_every if sync_every is not None else (config.log_every if on_cuda else 1)
        # full per-parameter norms every norm_every steps (every step on CUDA, where the fused
        # kernel is cheap); in between only the small parameters' gradients are checked
        self.norm_every = config.norm_every or (1 if on_cuda else 5)
        self._small = sentinel_parameters(self._params)
        self.step_index = 0
        self._random = any(isinstance(m, torch.nn.modules.dropout._DropoutNd) or "Dropout" in type(m).__name__
                           for m in model.modules())
        self.should_stop = False
        self.stop_event: Event | None = None
        self._handles: list[Any] = []
        self._post_handle: Any = None  # the step post-hook, only until w.step() is first called
        self._captured: tuple | None = None  # (args, kwargs, rng state) of the last training forward
        self._stepped = False
        self._lr_used: float | None = None
        self._explicit = explicit_steps  # True: w.step() closes every step (drivers, callbacks)
        self._closed_by_hook = False
        self._hook_closed = 0  # optimizer steps the post-hook saw (until the rhythm is settled)
        self._rhythm = 0  # optimizer steps before the first w.step, until the second one
        self._sample: dict[str, Any] = {}
        self._pending: list[tuple[int, dict[str, Any]]] = []  # samples not yet read to the host
        self._open = False
        self._tripped = False
        # the ranks' collectives (None in one process: then nothing distributed runs)
        self.distributed = attach(self, wrapper)

    # ---- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> "Watch":
        return self.start()

    def __exit__(self, exc_type, exc, tb) -> bool:
        self.close()
        if isinstance(exc, TrainingStopped) and exc.report is None:
            exc.report = self.report
        return False

    def start(self) -> "Watch":
        """Attach the hooks (``with`` does this)."""
        if self._open:
            return self
        self._open = True
        m = self.model
        self._handles.append(m.register_forward_pre_hook(capture_hook(self), with_kwargs=True))
        if self.optimizer is not None:
            self._handles.append(self.optimizer.register_step_pre_hook(step_pre_hook(self)))
            if not self._explicit:  # w.step() may never come: the post-hook closes the steps
                self._post_handle = self.optimizer.register_step_post_hook(WatchHook(self._post_step))
                self._handles.append(self._post_handle)
            in_opt = {id(p) for g in self.optimizer.param_groups for p in g["params"]}
            self.timeline.never_in_optimizer = [n for n, p in zip(self._names, self._params)
                                                if id(p) not in in_opt]
        if self.scheduler is not None:
            self.timeline.scheduler = type(self.scheduler).__name__
        upd = self._by_id.get("watch.updates")
        if isinstance(upd, UpdatesCheck):
            upd.all_params = [n for n, p in zip(self._names, self._params)
                              if n not in self.timeline.never_in_optimizer]
        nan = self._by_id["watch.nan"]
        amp = self._by_id["watch.amp"]
        if isinstance(nan, NanCheck) and isinstance(amp, AmpCheck):
            nan.amp = amp.has_scaler = self.scaler is not None
        if self.distributed is not None:
            self._handles += self.distributed.hooks()
        self._arm_if_sample()
        return self

    def close(self) -> None:
        """Remove every hook, flush what is buffered and judge it (``with`` does this)."""
        if not self._open:
            return
        self._open = False
        try:
            self.activations.disarm()
        finally:
            for h in self._handles:
                h.remove()
            self._handles.clear()
            self._captured = None
        self._flush(final=True)

    # ---- the user's calls -------------------------------------------------------------------
    def step(self, loss: Any = None) -> None:
        """Close one training step, with its loss: call it once per training step, after the
        optimizer step (or steps: a loop stepping twice per training step calls it once)."""
        if not self._open:
            raise UsageError("w.step() was called outside the watch.",
                             hint="Call it inside `with nndiag.watch(model, optimizer) as w:`.")
        if not self._explicit:
            self._explicit = True  # w.step() closes every step from now on
            if self._closed_by_hook:  # the optimizer hook already closed this step
                # the hook closed one step per optimizer step; if this loop steps k times per
                # w.step, those k were one step. The post-hook stays until the next w.step,
                # counting optimizer steps, to tell (_settle_rhythm)
                self._rhythm, self._hook_closed = self._hook_closed, 0
                if self._rhythm <= 1:
                    self._drop_post_hook()
                if loss is not None:
                    self.recorder.set_last_loss(loss, self.timeline)
                    if self.step_index % self.sync_every == 0:  # only at a sync point (CUDA)
                        self._check_loss(loss, self.step_index - 1)
                return
            self._drop_post_hook()  # one hook call less per step
        elif self._rhythm:
            self._settle_rhythm()
        self._end_step(loss)

    def _settle_rhythm(self) -> None:
        """At the second ``w.step``: as many optimizer steps since the first one as the hook
        closed before it means every ``w.step`` covers that many, so the hook's first steps were
        one training step: merge them, so that every later step number is right."""
        k, self._rhythm = self._rhythm, 0
        self._drop_post_hook()
        if self._hook_closed == k and self.timeline.steps == 0 and self.recorder.merge_first(k):
            self.step_index -= k - 1

    @property
    def report(self):
        """The :class:`nndiag.report.Report` so far (final after the ``with`` block)."""
        if self._open:
            self._flush()
        return build_report(self.name, self.checks, self.timeline, self._skipped_checks())

    # ---- hooks ------------------------------------------------------------------------------
    def _pre_step(self, optimizer, args, kwargs) -> None:
        # the optimizer is about to step: a GradScaler that skips the step never calls it
        self._stepped = True
        if not self.external_gradients:
            self.observe_gradients()

    def _drop_post_hook(self) -> None:
        if self._post_handle is not None:
            self._post_handle.remove()
            self._handles.remove(self._post_handle)
            self._post_handle = None

    def observe_gradients(self) -> None:
        """Read this step's gradients (norms on device, the NaN flag, a weight copy on sample
        steps). Called by the optimizer's step pre-hook; a trainer that runs forward and backward
        *inside* ``optimizer.step(closure)`` (Lightning) calls it from its before-step callback
        instead, with ``external_gradients=True``."""
        step = self.step_index
        self._lr_used = _lr(self.optimizer)  # the LR of this update (a scheduler may step before w.step)
        sample = self._sample_every and step % self._sample_every == 0
        if sample:
            self._take_activations()
            if not self.updates.has_snapshot:  # the first optimizer step of the step (GANs step twice)
                self.updates.snapshot()
        full = sample or step % self.norm_every == 0
        row = self.recorder.grad_norms() if full else UNMEASURED
        self.recorder.record_grads(row)
        # with a GradScaler, non-finite gradients make it skip the step: watch.amp judges those
        # the flag is read on the interval's last step, the step whose flush reads the buffers too,
        # so on CUDA (sync_every = log_every) the host waits for the device once per log interval
        if self.scaler is None and not self._tripped and (step + 1) % self.sync_every == 0:
            # NaN and Inf survive a sum: one reduction and one host read (a Python isfinite, not
            # one more tensor op); a finite sum that overflows is told apart just below
            finite = (math.isfinite(row.sum().item()) if full
                      else self.recorder.sentinel_finite(self._small))
            if not finite or self.distributed is not None:
                self._gradient_trip(step, finite)

    def _gradient_trip(self, step: int, finite: bool = False) -> None:
        """The flag read not finite (or, across ranks, any rank's did): trip, unless the gradients
        are finite after all (the L2 norm of huge but finite values overflows; max-abs tells)."""
        bad = not finite and not _max_abs_finite([p.grad for p in self._params if p.grad is not None])
        if self.distributed is not None:  # every rank takes the world's decision
            bad = self.distributed.any_rank(bad)
        if bad:
            self._trip(step, "gradient")

    def _post_step(self, optimizer, args, kwargs) -> None:
        self._hook_closed += 1  # optimizer steps since the watch began, or since the first w.step
        if not self._explicit:
            self._end_step(None)
            self._closed_by_hook = True

    # ---- the step clock -----------------------------------------------------------------------
    def _end_step(self, loss: Any) -> None:
        step = self.step_index
        every = self._sample_every
        if every and step % every == 0:
            self._take_activations()
            if self.updates.has_snapshot:  # every update of this step, however many
                self._sample["ratios"] = self.updates.ratios()
            self._pending.append((step, self._sample))
            self._sample = {}
        stepped, self._stepped = self._stepped, False
        lr = self._lr_used if self._lr_used is not None else _lr(self.optimizer)
        self._lr_used = None
        if loss is not None and not isinstance(loss, (torch.Tensor, float, int)):
            loss = None
        self.recorder.record_step(loss, lr, stepped)
        self.step_index = step + 1
        # a NaN loss makes NaN gradients, which the step pre-hook already checked; only a step
        # without an optimizer step needs its loss read now (the flush judges every loss anyway)
        if loss is not None and not stepped and (step + 1) % self.sync_every == 0:
            self._check_loss(loss, step, stepped)
        if every and (step + 1) % every == 0:
            self.activations.arm()
        if (step + 1) % self.cfg.log_every == 0:
            self._flush()

    def _check_loss(self, loss: Any, step: int, stepped: bool = True) -> None:
        if self._tripped or (self.scaler is not None and not stepped):
            return  # a skipped AMP step may carry an inf loss: watch.amp judges those
        if self.distributed is not None:
            return  # one rank's loss alone must not stop it: the flush judges it with the others
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if value != value or value in (float("inf"), float("-inf")):
            self._trip(step, "loss")

    def _arm_if_sample(self) -> None:
        if self._sample_every and self.step_index % self._sample_every == 0:
            self.activations.arm()

    def _take_activations(self) -> None:
        if "dead" not in self._sample:
            self._sample["dead"], self._sample["saturated"] = self.activations.disarm()
            for site, n in self.activations.last_observations.items():
                obs = self.timeline.observations
                obs[site] = max(obs.get(site, 0), n)

    # ---- judging ----------------------------------------------------------------------------
    def _flush(self, final: bool = False) -> None:
        self.recorder.flush(self.timeline)
        if self._pending:
            pending, self._pending = self._pending, []
            store_samples(pending, self.timeline, self._by_id.get("watch.updates"))
        if self.scaler is not None and hasattr(self.scaler, "get_scale") and self.timeline.steps:
            try:
                scale = float(self.scaler.get_scale())
                if not self.timeline.scale or self.timeline.scale[-1][0] != self.timeline.steps - 1:
                    self.timeline.scale.append((self.timeline.steps - 1, scale))
            except Exception:  # noqa: BLE001 - a scaler that is disabled or not yet used
                pass
        if self.distributed is not None:  # judged with the other ranks' findings
            for event in self.distributed.flush(final):
                self._handle(event)
            return
        for check in self.checks:
            for event in check.update(self.timeline):
                self._handle(event)

    def _trip(self, step: int, stage: str) -> None:
        self._tripped = True
        earlier = self._earlier_bad_loss(step)
        if earlier is not None:  # the first bad step is earlier: name it, not this one
            first, value = earlier
            nan = self._by_id["watch.nan"]
            before = len(nan.events)
            nan.trip(first, "loss", "", (
                f"the loss is {value}. Its gradients reached none of the parameters checked every "
                f"step (biases, norm scales, small weights), so the update wrote non-finite values "
                f"into the weights, found at step {step}. Only the last batch is kept, so this "
                f"step's producer cannot be replayed: rerun with norm_every=1 to stop at it"))
            for event in nan.events[before:]:
                self._handle(event)
            return
        where, detail = "", ("the replayed forward was finite, so the loss or the backward "
                             "produced it (pass replay_loss= to locate it in backward)")
        try:
            cap = Captured(*self._captured) if self._captured is not None else None
            producer = replay(self.model, cap, self.replay_loss, self.replay_shared)
        except Exception as exc:  # noqa: BLE001 - the replay must never break the user's run
            producer, detail = None, f"the replay to locate it failed: {exc}"
        if producer is not None:
            stage = {"input": "input", "forward": "value produced", "loss": "loss",
                     "backward": "gradient produced",
                     "gradients": "gradient", "parameters": "parameter"}.get(producer.stage, stage)
            where, detail = producer.where, producer.detail
        if self.distributed is not None:  # every rank replayed its own batch: name the rank
            stage, where, detail = self.distributed.attribute(stage, where, detail, producer is not None)
        nan = self._by_id["watch.nan"]
        before = len(nan.events)
        nan.trip(step, stage, where, detail)
        for event in nan.events[before:]:
            self._handle(event)

    def _earlier_bad_loss(self, step: int) -> tuple[int, float] | None:
        """(step, value) of the first non-finite loss still buffered on the device before ``step``
        (read only on a trip). None with a GradScaler (its skipped steps carry inf losses) or
        across ranks (judged with the others at the flush)."""
        if self.scaler is not None or self.distributed is not None:
            return None
        # the buffer starts after the flushed steps
        return self.recorder.first_non_finite_loss(self.timeline.steps, step)

    def _handle(self, event: Event) -> None:
        policy = self.cfg.policy_of(event.check)
        if event.severity not in ("warn", "fail") or policy == "report":
            return
        if self.on_event is not None:
            self.on_event(event)
        else:
            warnings.warn(f"[{event.check}] step {event.step}: {event.message}", WatchWarning,
                          stacklevel=4)
        if policy == "stop" and event.severity == "fail" and not self.should_stop:
            self.should_stop, self.stop_event = True, event
            if self.raise_on_stop:
                raise TrainingStopped(event)

    def _skipped_checks(self) -> dict[str, str]:
        out = {}
        if self.optimizer is None:
            out["watch.updates"] = "no optimizer given: pass it to watch the updates"
        return out


def _lr(optimizer) -> float:
    if optimizer is None or not optimizer.param_groups:
        return float("nan")
    lr = optimizer.param_groups[0].get("lr", float("nan"))
    try:
        return float(lr)
    except (TypeError, ValueError):
        return float("nan")
