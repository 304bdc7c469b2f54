"""Broken MLP: class targets numbered 1..10 while the model outputs 10 classes (ids 0..9).

The bug: an off-by-one in the label preprocessing (labels stored 1-based, as in MATLAB exports of
MNIST/SVHN). ``CrossEntropyLoss`` then reads out of bounds for label 10: a device-side assert on
GPU, an ``IndexError: Target 10 is out of bounds`` on CPU. Expected: the ``data`` probe fails
naming the targets and the valid range before anything crashes.
"""

from _mlp_base import SimpleANN, build_optimizer, dataloader as _reference_loader, loss_fn  # noqa: F401


def build_model():
    return SimpleANN()


def dataloader():
    """The reference MNIST batches with every label shifted by one (the bug)."""
    return [(x, y + 1) for x, y in _reference_loader()]
