"""``nndiag.watch``: nndiag's diagnostics, live, in a real training run, at about 1x the cost.

    with nndiag.watch(model, optimizer) as w:
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
            w.step(loss)            # optional: without it the optimizer's step hooks drive the watch
    print(w.report.exit_code())     # a nndiag.report.Report, for the JSON/CSV/HTML writers

A check whose policy is ``stop`` raises :class:`TrainingStopped` when it fails (a NaN is caught
before the update that would corrupt the weights). Lightning and Hugging Face users add
``nndiag.integrations.lightning.NndiagCallback`` / ``nndiag.integrations.transformers.NndiagCallback``.
docs/watch.md lists the checks, their thresholds and their cost.
"""

from __future__ import annotations

import sys
import types
from typing import Any, Callable, Mapping

from nndiag.watch.config import CHECKS, DEFAULT_POLICY, WatchConfig, make_config

_LAZY = {"Watch": "core", "TrainingStopped": "events", "WatchWarning": "events", "WatchHook": "events",
         "Event": "timeline"}  # torch is imported on first use, not by ``import nndiag.watch``


def watch(model, optimizer=None, *, scaler: Any = None, scheduler: Any = None, name: str = "",
          policy: str | Mapping[str, str] | None = None, profile: str | None = None,
          config: WatchConfig | None = None, on_event: Callable[[Any], None] | None = None,
          raise_on_stop: bool = True, sync_every: int | None = None,
          replay_loss: Callable | None = None, **settings: Any) -> "Watch":
    """Watch ``model`` (trained by ``optimizer``) in the caller's own loop; use as a context manager.

    ``scaler``: the ``torch.amp.GradScaler`` in use (its skipped steps are then expected, and a
    collapsing scale is reported). ``scheduler``: the LR scheduler, named in verdicts (the LR itself
    is read from the optimizer). ``policy``: one of report/warn/stop for every check, or a mapping
    ``{"nan": "stop", "gradients": "report"}``. ``profile``: ``"default"`` or ``"minimal"``
    (every-step finiteness and gradient norms only). ``settings``: any :class:`WatchConfig` field
    (``log_every=25``, ``sample_every=50``, ``divergence_factor=3.0``, ...). ``on_event`` receives each
    verdict as it happens (default: a :class:`WatchWarning`). ``replay_loss(model, output)``: how to
    compute the loss from a replayed forward, so a backward NaN producer can be named.
    """
    from nndiag.watch.core import Watch

    cfg = make_config(config, policy, profile, settings)
    return Watch(model, optimizer, config=cfg, scaler=scaler, scheduler=scheduler, name=name,
                 raise_on_stop=raise_on_stop, on_event=on_event, sync_every=sync_every,
                 replay_loss=replay_loss)


__all__ = ["watch", "Watch", "WatchConfig", "TrainingStopped", "WatchWarning", "Event", "CHECKS",
           "DEFAULT_POLICY"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"nndiag.watch.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'nndiag.watch' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """``nndiag.watch`` is both this package and the function: ``nndiag.watch(model, opt)`` and
    ``nndiag.watch.TrainingStopped`` both work, whichever import ran first."""

    def __call__(self, *args: Any, **kwargs: Any) -> "Watch":
        return watch(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
