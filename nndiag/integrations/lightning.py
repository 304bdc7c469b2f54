"""``NndiagCallback`` for Lightning: the watch on a ``Trainer.fit`` run.

    trainer = lightning.Trainer(callbacks=[NndiagCallback()])
    trainer.fit(module, loader)
    callback.report.exit_code()

Lightning runs ``training_step`` and ``backward`` *inside* ``optimizer.step(closure)``, so the
gradients are read in ``on_before_optimizer_step`` (after ``unscale_`` under 16-bit AMP, before
the update) rather than in the optimizer's step pre-hook; the loss comes from
``on_train_batch_end``. A failing check whose policy is ``stop`` sets ``trainer.should_stop``.
The NaN replay reruns the module's ``forward`` on a copy that shares (does not copy) the Trainer;
it needs ``training_step`` to call ``self(...)``.
"""

from __future__ import annotations

from typing import Any

try:
    from lightning.pytorch.callbacks import Callback
except ImportError:  # pragma: no cover - the extra is not installed
    try:
        from pytorch_lightning.callbacks import Callback  # type: ignore[no-redef]
    except ImportError:
        Callback = None  # type: ignore[assignment,misc]

from nndiag.integrations._common import make_watch

if Callback is None:  # pragma: no cover
    raise ImportError("nndiag.integrations.lightning needs Lightning: pip install nndiag[lightning]")


class NndiagCallback(Callback):
    """Watch the fit; ``options`` are those of :func:`nndiag.watch.watch` (policy, log_every, ...)."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        self.options = options
        self.watch = None
        self._report = None

    @property
    def report(self):
        """The watch's :class:`nndiag.report.Report` (None before the fit started)."""
        if self.watch is None:
            return self._report
        return self.watch.report

    def on_train_start(self, trainer, pl_module) -> None:
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        scaler = getattr(getattr(trainer, "precision_plugin", None), "scaler", None)
        self.options.setdefault("name", f"{type(pl_module).__name__} (Lightning)")
        self.watch = make_watch(pl_module, optimizer, self.options, scaler=scaler,
                                external_gradients=True, replay_shared=(trainer,))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if self.watch is not None:
            self.watch.observe_gradients()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.watch is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.watch.step(loss)
        if self.watch.should_stop:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module) -> None:
        self._close()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._close()

    def _close(self) -> None:
        if self.watch is not None:
            self.watch.close()
            self._report = self.watch.report
