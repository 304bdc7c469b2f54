"""What both callbacks share: building the watch from the callback's options."""

from __future__ import annotations

from typing import Any, Callable

from nndiag.watch.config import make_config


def make_watch(model, optimizer, options: dict[str, Any], **extra: Any):
    """A started :class:`~nndiag.watch.core.Watch` that never raises (the trainer stops instead)."""
    from nndiag.watch.core import Watch

    opts = dict(options)
    policy, profile, config = opts.pop("policy", None), opts.pop("profile", None), opts.pop("config", None)
    name = opts.pop("name", "")
    on_event: Callable | None = opts.pop("on_event", None)
    sync_every = opts.pop("sync_every", None)
    cfg = make_config(config, policy, profile, opts)
    return Watch(model, optimizer, config=cfg, name=name, on_event=on_event, sync_every=sync_every,
                 raise_on_stop=False, explicit_steps=True, **extra).start()
