"""Broken digits MLP: a ``train_step`` that never calls ``optimizer.zero_grad()``.

The bug (bug-catalogue.md, PyTorch mistakes: "a training step that never calls zero_grad()"):
PyTorch adds each ``backward()`` into ``.grad``, so without ``zero_grad()`` every update uses the
sum of all gradients so far. Training still runs and the loss may even fall for a while, which is
why the bug survives. Expected: the ``updates`` probe fails ("train_step does not clear gradients
between steps", fraction of the previous gradient kept = 1.00).
"""

from _digits_base import dataloader, DigitsMLP, build_model, loss_fn, build_optimizer  # noqa: F401 - contract names


def train_step(model, optimizer, batch):
    x, y = batch
    loss = loss_fn(model(x), y)  # BUG: optimizer.zero_grad() is never called
    loss.backward()
    optimizer.step()
    return loss.item()
