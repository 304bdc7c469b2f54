"""Do the labels depend on the inputs at all? A leave-one-out nearest-neighbour test.

Inputs and targets shuffled with two different permutations, labels read from the wrong column, a
join on the wrong key: the labels no longer belong to their inputs. One batch can still be fitted
(a network memorises random labels), so no training probe sees it. A 1-nearest-neighbour
classifier on the raw inputs needs no training: on real data it beats chance by far (digits: ~0.9
against 0.1), on labels unrelated to their inputs it scores chance, ``sum_c p_c^2`` for class
frequencies ``p_c``. The z-score of the observed accuracy against that binomial null is the
measurement; the data probe's bands come from the zoo (docs/probes/data.md).

Random test data (``torch.randn`` inputs, ``torch.randint`` labels: the most common smoke test)
has unrelated labels too, by construction. What tells it from real data whose labels were
shuffled away is the inputs: real features are correlated (neighbouring pixels, related
measurements), independent random ones are not. :func:`feature_structure` is the largest
eigenvalue of the features' correlation matrix over the Marchenko-Pastur edge
``(1 + sqrt(d / n))^2``, where independent features put it: measured 0.70-0.99 for
``torch.randn``/``torch.rand``/``torch.randint`` features (3-784 features, 32-256 samples),
2.2-9.1 for real data (iris 2.2, MNIST 2.7-4.6, wine 2.9, digits 3.5, breast cancer 7.2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LabelSignal:
    """Leave-one-out 1-NN accuracy of the labels on the raw inputs, and what chance would give."""

    samples: int
    accuracy: float
    chance: float  # sum of squared class frequencies
    z: float  # (accuracy - chance) / binomial standard error


def nearest_neighbour_signal(inputs: torch.Tensor, labels: torch.Tensor) -> LabelSignal | None:
    """The 1-NN test on ``inputs`` (N, ...) float and ``labels`` (N,) class ids; None when the
    test means nothing (fewer than 32 samples, one class, duplicate-free distance impossible)."""
    n = int(labels.shape[0])
    if n < 32 or inputs.shape[0] != n or labels.dim() != 1:
        return None
    x = inputs.detach().reshape(n, -1).double()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)  # per-feature standardised: no column dominates
    d = torch.cdist(x, x)
    d.fill_diagonal_(math.inf)
    nearest = d.argmin(1)
    y = labels.detach().reshape(-1).long()
    accuracy = float((y[nearest] == y).double().mean())
    freq = torch.bincount(y - y.min()).double() / n
    chance = float((freq ** 2).sum())
    if chance >= 1.0:
        return None
    se = math.sqrt(chance * (1 - chance) / n)
    return LabelSignal(n, accuracy, chance, (accuracy - chance) / se)


def feature_structure(inputs: torch.Tensor, max_features: int = 256) -> float | None:
    """Largest eigenvalue of the input features' correlation matrix, in units of the
    Marchenko-Pastur edge that independent features reach; None with fewer than 3 varying
    features or 16 samples."""
    n = int(inputs.shape[0])
    x = inputs.detach().reshape(n, -1).double()
    x = x[:, x.std(0) > 0]
    if n < 16 or x.shape[1] < 3:
        return None
    if x.shape[1] > max_features:  # an evenly spaced subset keeps the cost flat
        # the indices are computed on the CPU (the same features on every device), then moved
        x = x[:, torch.linspace(0, x.shape[1] - 1, max_features).long().to(x.device)]
    d = x.shape[1]
    x = (x - x.mean(0)) / x.std(0)
    top = float(torch.linalg.eigvalsh((x.T @ x) / (n - 1))[-1])
    return top / (1 + math.sqrt(d / (n - 1))) ** 2
