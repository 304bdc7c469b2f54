"""Small offline data sets shared by the zoo's model files (no downloads, seconds to build).

Everything is either synthetic (drawn from a local ``torch.Generator`` with a fixed seed, so a
file's data never depends on the global RNG) or one of scikit-learn's bundled data sets. Loaders:

* digits (sklearn ``load_digits``, 1,797 8x8 images, 10 classes): flat (N, 64), images
  (N, 1, 8, 8), or upsampled RGB (N, 3, 32, 32) normalised per channel for stock CNN classifiers;
* blobs and tabular classification (sklearn ``make_blobs``, ``load_iris``, ``load_wine``);
* regression on raw features (unscaled counts / polynomial terms);
* token data: sequence classification, tagging, language modelling, seq2seq (reverse);
* multi-label classification (sklearn ``make_multilabel_classification``);
* sine waves for curve fitting.

:func:`batches` and :func:`loader` turn tensors into a list of batches or a ``DataLoader``.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

__all__ = [
    "batches", "loader", "digits_flat", "digits_images", "digits_rgb", "blobs", "iris", "wine",
    "raw_count_regression", "poly_regression", "sine", "token_classification", "token_tagging",
    "lm_tokens", "reverse_pairs", "multilabel", "pad_lengths", "shapes_segmentation",
]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def batches(x, y, batch_size: int = 32, *, seed: int = 0, limit: int | None = None) -> list:
    """A list of ``(x[i:i+b], y[i:i+b])`` batches over a fixed shuffle of the samples.

    ``x`` may be a tensor or a tuple of tensors (inputs passed positionally); ``limit`` keeps only
    the first ``limit`` samples after shuffling (small data keeps the zoo fast).
    """
    n = len(y) if not isinstance(y, dict) else len(next(iter(y.values())))
    order = torch.randperm(n, generator=_gen(seed))
    if limit is not None:
        order = order[:limit]

    def take(t, idx):
        if isinstance(t, tuple):
            return tuple(take(a, idx) for a in t)
        if isinstance(t, dict):
            return {k: take(v, idx) for k, v in t.items()}
        return t[idx]

    return [(take(x, order[i:i + batch_size]), take(y, order[i:i + batch_size]))
            for i in range(0, len(order), batch_size)]


def loader(x, y, batch_size: int = 32, *, seed: int = 0, shuffle: bool = True,
           limit: int | None = None, drop_last: bool = False) -> DataLoader:
    """A ``DataLoader`` over ``TensorDataset(x, y)``, shuffling with its own seeded generator."""
    if limit is not None:
        order = torch.randperm(len(y), generator=_gen(seed))[:limit]
        x, y = x[order], y[order]
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=_gen(seed) if shuffle else None, drop_last=drop_last)


# ---- images -------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    return torch.tensor(d.data, dtype=torch.float32), torch.tensor(d.target, dtype=torch.long)


def digits_flat(scale: float = 1 / 16):
    """sklearn digits as ``(N, 64)`` float32 (0-16 pixels times ``scale``) and int64 labels."""
    x, y = _digits()
    return x * scale, y.clone()


def digits_images(scale: float = 1 / 16, normalize: bool = False):
    """sklearn digits as ``(N, 1, 8, 8)`` images; ``normalize`` standardises to mean 0, std 1."""
    x, y = digits_flat(scale)
    x = x.reshape(-1, 1, 8, 8)
    if normalize:
        x = (x - x.mean()) / x.std()
    return x, y


def digits_rgb(size: int = 32, limit: int | None = 512):
    """sklearn digits upsampled (bilinear) to ``(N, 3, size, size)``, normalised per channel with
    ImageNet's mean/std after scaling to [0, 1], as torchvision's classification recipes do."""
    x, y = digits_images()
    if limit is not None:
        x, y = x[:limit], y[:limit]
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)
    x = x.repeat(1, 3, 1, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std, y


# ---- tabular ------------------------------------------------------------------------------------
def blobs(n: int = 512, centers: int = 4, features: int = 2, *, std: float = 1.0, seed: int = 0):
    """Gaussian blobs (sklearn ``make_blobs``): float32 ``(n, features)``, int64 labels."""
    from sklearn.datasets import make_blobs

    x, y = make_blobs(n_samples=n, centers=centers, n_features=features, cluster_std=std,
                      random_state=seed)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)


def iris(standardize: bool = True):
    """sklearn iris: 150 x 4 features (cm, standardised unless ``standardize=False``), 3 classes."""
    from sklearn.datasets import load_iris

    d = load_iris()
    x = torch.tensor(d.data, dtype=torch.float32)
    if standardize:
        x = (x - x.mean(0)) / x.std(0)
    return x, torch.tensor(d.target, dtype=torch.long)


def wine(standardize: bool = True):
    """sklearn wine: 178 x 13 chemical measurements (raw units unless standardised), 3 classes."""
    from sklearn.datasets import load_wine

    d = load_wine()
    x = torch.tensor(d.data, dtype=torch.float32)
    if standardize:
        x = (x - x.mean(0)) / x.std(0)
    return x, torch.tensor(d.target, dtype=torch.long)


def raw_count_regression(n: int = 512, *, seed: int = 0):
    """Regression on raw, unscaled count features (e.g. rooms, visitors, years): inputs range from
    about 0 to 200; the float32 target ``(n, 1)`` is a noisy linear function of them, in units of
    about 1."""
    g = _gen(seed)
    rooms = torch.randint(1, 10, (n, 1), generator=g).float()
    visits = torch.poisson(torch.full((n, 1), 50.0), generator=g)
    age = torch.randint(0, 100, (n, 1), generator=g).float()
    x = torch.cat([rooms, visits, age], 1)
    y = 0.3 * rooms + 0.02 * visits - 0.01 * age + 0.1 * torch.randn(n, 1, generator=g)
    return x, y


def poly_regression(n: int = 512, degree: int = 3, *, seed: int = 0):
    """Polynomial features ``[t, t^2, ..., t^degree]`` of ``t`` in [0, 3] (not rescaled, as
    sklearn's PolynomialFeatures gives them) and a smooth target ``sin(t) + 0.1 t``."""
    g = _gen(seed)
    t = torch.rand(n, 1, generator=g) * 3
    x = torch.cat([t ** k for k in range(1, degree + 1)], 1)
    y = torch.sin(t) + 0.1 * t + 0.05 * torch.randn(n, 1, generator=g)
    return x, y


def sine(n: int = 256, *, seed: int = 0, noise: float = 0.05):
    """Points of ``sin(x)`` on ``[-pi, pi]`` with Gaussian noise: ``(n, 1)`` inputs and targets."""
    g = _gen(seed)
    x = torch.rand(n, 1, generator=g) * 2 * torch.pi - torch.pi
    return x, torch.sin(x) + noise * torch.randn(n, 1, generator=g)


def multilabel(n: int = 512, features: int = 20, labels: int = 5, *, seed: int = 0):
    """sklearn ``make_multilabel_classification``: count features standardised, float 0/1 targets
    ``(n, labels)`` (several labels per sample)."""
    from sklearn.datasets import make_multilabel_classification

    x, y = make_multilabel_classification(n_samples=n, n_features=features, n_classes=labels,
                                          random_state=seed)
    x = torch.tensor(x, dtype=torch.float32)
    return (x - x.mean(0)) / (x.std(0) + 1e-6), torch.tensor(y, dtype=torch.float32)


# ---- tokens -------------------------------------------------------------------------------------
def token_classification(n: int = 512, seq_len: int = 16, vocab: int = 50, classes: int = 2, *,
                         seed: int = 0, pad_id: int | None = None):
    """Token sequences whose class is which of ``classes`` marker tokens (ids 1..classes) occurs
    most often; other tokens are noise from ``classes+1 .. vocab-1``. Returns int64 ``(n, seq_len)``
    ids and int64 labels. With ``pad_id`` set, each sequence gets a random length in
    [seq_len/2, seq_len] and the rest is padded with ``pad_id``; lengths are returned third."""
    g = _gen(seed)
    ids = torch.randint(classes + 1, vocab, (n, seq_len), generator=g)  # id 0 stays free for padding
    y = torch.randint(0, classes, (n,), generator=g)
    # 3 to 5 copies of the class marker at random positions in the first half (always kept).
    for i in range(n):
        k = int(torch.randint(3, 6, (1,), generator=g))
        pos = torch.randperm(seq_len // 2, generator=g)[:k]
        ids[i, pos] = 1 + y[i]
    if pad_id is None:
        return ids, y
    lengths = torch.randint(seq_len // 2, seq_len + 1, (n,), generator=g)
    mask = torch.arange(seq_len)[None, :] >= lengths[:, None]
    ids[mask] = pad_id
    return ids, y, lengths


def token_tagging(n: int = 512, seq_len: int = 12, vocab: int = 40, tags: int = 4, *, seed: int = 0):
    """Tagging: each token's tag is ``token % tags`` shifted by one when the previous token is even
    (so context matters). Returns int64 ids ``(n, seq_len)`` and tags ``(n, seq_len)``."""
    g = _gen(seed)
    ids = torch.randint(0, vocab, (n, seq_len), generator=g)
    prev_even = torch.zeros_like(ids)
    prev_even[:, 1:] = (ids[:, :-1] % 2 == 0).long()
    return ids, (ids + prev_even) % tags


def lm_tokens(n: int = 256, seq_len: int = 17, vocab: int = 32, *, seed: int = 0):
    """Language-model sequences from a fixed random first-order Markov chain with peaked
    transitions (each token has 2 likely successors), int64 ``(n, seq_len)``. Inputs are
    ``seq[:, :-1]`` and targets ``seq[:, 1:]`` for next-token prediction."""
    g = _gen(seed)
    succ = torch.randint(0, vocab, (vocab, 2), generator=g)
    seq = torch.empty(n, seq_len, dtype=torch.long)
    seq[:, 0] = torch.randint(0, vocab, (n,), generator=g)
    for t in range(1, seq_len):
        pick = (torch.rand(n, generator=g) < 0.8).long()
        nxt = succ[seq[:, t - 1], 1 - pick]
        noise = torch.rand(n, generator=g) < 0.05
        nxt[noise] = torch.randint(0, vocab, (int(noise.sum()),), generator=g)
        seq[:, t] = nxt
    return seq


def reverse_pairs(n: int = 512, seq_len: int = 6, vocab: int = 12, *, seed: int = 0,
                  sos: int = 0):
    """Seq2seq data: source ids in ``2 .. vocab-1`` and the target = the source reversed, with
    ``sos`` (0) prepended for teacher forcing; ``(src (n, L), tgt (n, L + 1))``, int64."""
    g = _gen(seed)
    src = torch.randint(2, vocab, (n, seq_len), generator=g)
    tgt = torch.cat([torch.full((n, 1), sos), src.flip(1)], 1)
    return src, tgt


def pad_lengths(lengths: torch.Tensor) -> torch.Tensor:
    """Sequence lengths as the int64 CPU tensor ``pack_padded_sequence`` wants."""
    return lengths.to(torch.int64).cpu()


def shapes_segmentation(n: int = 256, size: int = 16, *, seed: int = 0, noise: float = 0.3):
    """Segmentation: grey ``(n, 1, size, size)`` images with one bright disc and one dim square
    plus Gaussian noise; the float ``(n, 1, size, size)`` target is the disc's mask."""
    g = _gen(seed)
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    cx, cy = (torch.rand(2, n, 1, 1, generator=g) * (size - 6) + 3)
    r = torch.rand(n, 1, 1, generator=g) * 2 + 2
    disc = (((xx - cx) ** 2 + (yy - cy) ** 2) <= r ** 2).float()
    sx, sy = torch.randint(0, size - 5, (2, n, 1, 1), generator=g)
    square = ((xx >= sx) & (xx < sx + 5) & (yy >= sy) & (yy < sy + 5)).float() * (1 - disc)
    img = disc + 0.5 * square + noise * torch.randn(n, size, size, generator=g)
    return img.unsqueeze(1), disc.unsqueeze(1)
