"""Broken digits MLP: a ``train_step`` that forgets ``optimizer.step()``.

The bug (a PyTorch mistake in the same family as bug-catalogue.md's "a training step that never
calls zero_grad()"; torchtest's ``assert_vars_change`` exists for it): gradients are computed and
cleared every step, but never applied, so the model stays at its initialisation while the loop
runs without an error. Expected: the ``updates`` probe fails ("One optimizer step changed none of
the 4 trainable parameter tensors").
"""

from _digits_base import dataloader, DigitsMLP, build_model, loss_fn, build_optimizer  # noqa: F401 - contract names


def train_step(model, optimizer, batch):
    x, y = batch
    optimizer.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()  # BUG: optimizer.step() is missing, so nothing is ever updated
    return loss.item()
