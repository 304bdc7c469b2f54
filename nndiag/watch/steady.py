"""The watch's two every-step hooks, built once per watch for its steady step.

Four steps in five on the CPU are *steady*: no full gradient norms, no sample, no flush. On those
the watch only keeps the forward's inputs, checks the small parameters' gradients with one fused
op, and keeps the loss. Each Python call, attribute lookup and object touched after a backward
costs several times its warm cost (the caches are cold; docs/watch.md, measured overhead), so the
steady path runs in one frame per hook, with everything that does not change during the watch bound
as closure cells. Any other step goes through :meth:`nndiag.watch.core.Watch.observe_gradients`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from nndiag.watch.events import WatchHook


def capture_hook(watch: Any) -> WatchHook:
    """The root forward pre-hook: a reference to a training forward's inputs (and the CPU RNG
    state, for a model with random layers) for the NaN replay. Nothing is copied."""
    get_rng = torch.get_rng_state if watch._random else None

    def capture(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        if module.training:
            watch._captured = (args, kwargs, get_rng() if get_rng is not None else None)

    return WatchHook(capture)


def step_pre_hook(watch: Any) -> WatchHook:
    """The optimizer's step pre-hook: on a steady step, the LR and the small parameters' flag in
    one frame; every other step (and every step of a watch without the steady path: a GradScaler,
    a sync less often than every step, several ranks, gradients read by a trainer) through the
    general path."""
    general: Callable[..., None] = watch._pre_step
    if (watch.scaler is not None or watch.sync_every != 1 or watch.distributed is not None
            or watch.external_gradients or watch.optimizer is None):
        return WatchHook(general)
    recorder, small, norm_every = watch.recorder, watch._small, watch.norm_every
    every = watch._sample_every or 0
    steady_flag = recorder.steady_flag

    def pre_step(optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        step = watch.step_index
        if watch._tripped or step % norm_every == 0 or (every and step % every == 0):
            return general(optimizer, args, kwargs)
        watch._stepped = True  # a GradScaler that skips the step never calls this hook
        lr = optimizer.param_groups[0].get("lr")
        # the LR of this update (a scheduler may step before w.step); a tensor LR is read as a float
        watch._lr_used = lr if type(lr) is float else _as_float(lr)
        if not steady_flag(small):
            watch._gradient_trip(step)
        return None

    return WatchHook(pre_step)


def _as_float(lr: Any) -> float:
    try:
        return float(lr)
    except (TypeError, ValueError):
        return float("nan")
