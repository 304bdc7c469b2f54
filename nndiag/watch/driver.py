"""Training a model file's own setup under the watch: the core of ``nndiag watch FILE``.

The file is loaded as for ``nndiag check`` (a :class:`~nndiag.subject.Subject`); a fresh model is
built under the seed, its optimizer from ``build_optimizer`` (Adam 1e-3 by default), and it trains
on its own data (``train_loader`` / ``dataloader()`` / ``sample_batch()``), cycling the loader for
as many epochs as ``steps`` needs, with nndiag's usual step (``zero_grad``, loss, ``backward``,
``step``) or the file's ``train_step``. The watch sees it exactly as it would see a user's loop.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from nndiag.batches import to_device
from nndiag.errors import SubjectError
from nndiag.seeding import preserved_rng, seed_everything
from nndiag.subject import Subject
from nndiag.workbench import Workbench
from nndiag.watch import watch as make_watch
from nndiag.watch.core import Watch


def _batches(bench: Workbench, epochs: int | None):
    """The subject's batches, epoch after epoch (a one-batch ``sample_batch`` repeats)."""
    s = bench.subject
    if s.batches is None:
        raise SubjectError("The model file gives no data.", hint="Define train_loader, dataloader() "
                           "or sample_batch() (docs/model-file.md).")
    epoch = 0
    while epochs is None or epoch < epochs:
        empty = True
        for batch in bench._user_call(s.data_source, s.batches):
            empty = False
            yield epoch, to_device(batch, bench.device)
        if empty:
            raise SubjectError(f"{s.data_source} yielded no batches.", hint="Check the data set is not empty.")
        epoch += 1


def run_subject(subject: Subject, *, steps: int | None = None, epochs: int | None = None,
                seed: int = 0, device: str = "cpu",
                progress: Callable[[int, Any], None] | None = None,
                **watch_options: Any) -> Watch:
    """Train ``subject`` for ``steps`` steps (or ``epochs`` epochs) with the watch on; the closed
    Watch (``.report``) comes back. The caller's RNG is restored afterwards.

    ``progress(step, loss)`` is called after every step with the step's loss as the step returned
    it (a detached tensor, on the device, or a float or None): call ``float(loss)`` only on the
    steps it shows, since on CUDA each read waits for the device."""
    if steps is None and epochs is None:
        raise SubjectError("Say how long to train.", hint="Pass --steps N or --epochs N.")
    bench = Workbench(subject, device=device, seed=seed)
    with preserved_rng():
        seed_everything(seed)
        model = bench.fresh_model()
        optimizer = bench.make_optimizer(model)
        current: dict[str, Any] = {}

        def replay_loss(twin, output):
            return bench.loss_of_output(output, current["batch"])

        own_loss = subject.training_step is None and subject.train_step is None
        w = make_watch(model, optimizer, name=subject.name,
                       replay_loss=replay_loss if own_loss else None, **watch_options)
        w._explicit = True  # this loop calls w.step() every step (a train_step may step twice)
        with w:
            done = 0
            for _, batch in _batches(bench, epochs):
                if steps is not None and done >= steps:
                    break
                current["batch"] = batch
                loss = _one_step(bench, model, optimizer, batch)
                w.step(loss)
                done += 1
                if progress is not None:
                    # the loss as it came (a device tensor): reading it is the caller's choice,
                    # on the steps it prints, so the loop adds no host sync per step
                    progress(done, loss.detach() if isinstance(loss, torch.Tensor) else loss)
                if w.should_stop:
                    break
    return w


def _one_step(bench: Workbench, model, optimizer, batch) -> Any:
    if bench.has_own_step:
        return bench.train_one_step(model, optimizer, batch)
    optimizer.zero_grad(set_to_none=True)
    loss = bench.compute_loss(model, batch)
    bench.backward(loss)
    optimizer.step()
    return loss.detach()
