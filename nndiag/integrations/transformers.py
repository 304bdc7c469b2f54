"""``NndiagCallback`` for the Hugging Face ``Trainer``: the watch on ``trainer.train()``.

    trainer = Trainer(model=model, args=args, train_dataset=ds, callbacks=[NndiagCallback()])

The gradients are read in the (unwrapped) optimizer's step pre-hook, i.e. after the Trainer's
gradient clipping (its logged ``grad_norm`` is the pre-clip one); clipping keeps NaN as NaN, so
the NaN check is unaffected. The loss is the ``loss`` of the model's output, taken by a forward
hook (the Trainer passes none to callbacks, and its default ``logging_nan_inf_filter`` hides NaN
losses behind a running average). A failing ``stop`` check sets ``control.should_training_stop``.
"""

from __future__ import annotations

from typing import Any

try:
    from transformers import TrainerCallback
except ImportError:  # pragma: no cover - the extra is not installed
    raise ImportError("nndiag.integrations.transformers needs transformers: "
                      "pip install nndiag[transformers]") from None

from nndiag.integrations._common import make_watch


def _loss_of(output: Any) -> Any:
    if isinstance(output, dict):
        return output.get("loss")
    return getattr(output, "loss", None)


class NndiagCallback(TrainerCallback):
    """Watch the training; ``options`` are those of :func:`nndiag.watch.watch`."""

    def __init__(self, **options: Any) -> None:
        self.options = options
        self.watch = None
        self._report = None
        self._losses: list = []
        self._handle = None

    @property
    def report(self):
        """The watch's :class:`nndiag.report.Report` (None before training started)."""
        return self.watch.report if self.watch is not None else self._report

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs) -> None:
        inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer
        self.options.setdefault("name", f"{type(model).__name__} (transformers)")
        self.watch = make_watch(model, inner, self.options,
                                replay_loss=lambda twin, out: _loss_of(out))
        from nndiag.watch.events import WatchHook  # deep-copies as itself: the replay copies the model

        self._handle = model.register_forward_hook(WatchHook(self._keep_loss))

    def _keep_loss(self, module, inputs, output) -> None:
        loss = _loss_of(output)
        if module.training and loss is not None:
            self._losses.append(loss.detach())

    def on_step_end(self, args, state, control, **kwargs) -> None:
        if self.watch is None:
            return
        losses, self._losses = self._losses, []
        loss = sum(losses) / len(losses) if losses else None  # mean over accumulated micro-batches
        self.watch.step(loss)
        if self.watch.should_stop:
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None
        if self.watch is not None:
            self.watch.close()
            self._report = self.watch.report
